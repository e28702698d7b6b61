"""A digest of the sources a process serves: replicas are the processes sharing one
``shared_state_url`` and this identity, not every process on a Redis (docs/operations.md,
"Several replicas")."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from jobbridge.redis_urls import redact_url

if TYPE_CHECKING:
    from jobbridge.settings import Settings

#: hex digits of the digest kept: enough to tell configurations apart, short in the record
_DIGEST_LENGTH = 16


def config_identity(settings: Settings) -> str:
    """A digest of each source's name, system, URLs without their credentials and key
    prefixes: equal for processes serving the same sources, however their secrets differ.

    For ``serve --redis URL`` it is a digest of that URL (without credentials) instead: the
    sources are what detection found, at start-up and later in the background, so two
    processes started before and after a system appeared serve the same once both detected
    it, and stay replicas of each other meanwhile.
    """
    if settings.detect_url is not None:
        text = json.dumps(["detect", redact_url(settings.detect_url)], separators=(",", ":"))
        return hashlib.sha256(text.encode("ascii")).hexdigest()[:_DIGEST_LENGTH]
    described = [
        [
            source.name,
            source.system,
            redact_url(source.redis_url),
            source.effective_key_prefix,
            redact_url(source.result_backend_url) if source.result_backend_url else None,
            source.result_key_prefix,
            source.jobbridge_prefix,
            source.sentinel_master,
        ]
        for source in settings.sources
    ]
    text = json.dumps(described, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:_DIGEST_LENGTH]
