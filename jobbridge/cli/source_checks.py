"""``doctor``'s checks of each source, beyond finding its system: what the system's
``SystemSpec.doctor`` says is wrong, and what to change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.exceptions

from jobbridge.adapters import Detected, system
from jobbridge.cli.common import echo
from jobbridge.errors import ConfigError
from jobbridge.settings import Settings, SourceConfig
from jobbridge.sources import connect, detected_sources
from jobbridge.text import clean

#: characters of one line of advice shown at the most
_LINE_MAX = 600


def sources_to_check(
    settings: Settings, found_at: Mapping[str, Sequence[Detected]]
) -> list[SourceConfig]:
    """The configured sources, else those ``--redis`` detection found (``found_at``: what
    detection found, by URL)."""
    if settings.sources:
        return list(settings.sources)
    url = settings.detect_url
    return detected_sources(url, found_at[url])[0] if url and url in found_at else []


async def source_advice(sources: Sequence[SourceConfig]) -> list[str]:
    """One output line per piece of advice, naming its source; a source whose Redis fails
    here was reported by the reachability check already."""
    lines: list[str] = []
    for source in sources:
        spec = system(source.system)
        if spec.doctor is None:
            continue
        client = results = None
        try:
            client = connect(
                source.redis_url,
                sentinel_master=source.sentinel_master,
                sentinel_password=source.sentinel_password,
            )
            if source.result_backend_url and source.result_backend_url != source.redis_url:
                results = connect(source.result_backend_url)
            said = await spec.doctor(source, client, results)
        except (redis.exceptions.RedisError, OSError, ConfigError) as exc:
            said = [f"checks not run ({type(exc).__name__})"]
        finally:
            for opened in (client, results):
                if opened is not None:
                    await opened.aclose()
        lines += [f"⚠ source {clean(source.name)}: {clean(line, _LINE_MAX)}" for line in said]
    return lines


async def echo_advice(settings: Settings, found_at: Mapping[str, Sequence[Detected]]) -> None:
    """Print the advice for the sources doctor checks, one line each."""
    for line in await source_advice(sources_to_check(settings, found_at)):
        echo(line)
