"""The registry of systems: the built-in entries, and what the rest of jobbridge reads of them."""

from __future__ import annotations

from dataclasses import fields

import pytest

from jobbridge.adapters import registry
from jobbridge.errors import ConfigError
from jobbridge.model import Action
from jobbridge.settings import SourceConfig
from jobbridge.sources import build_adapter


def test_the_built_in_systems_in_their_order() -> None:
    assert registry.names()[:3] == ("autumn", "rq", "celery")
    assert [registry.title(n) for n in ("autumn", "rq", "celery")] == ["Autumn", "RQ", "Celery"]
    assert registry.fallback().name == "autumn"


def test_an_unknown_system_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="system 'nope' is not supported"):
        registry.system("nope")
    source = SourceConfig(name="s", system="nope", redis_url="redis://h/0", key_prefix="p")
    with pytest.raises(ConfigError, match="is not supported yet"):
        build_adapter(source, client=None)  # type: ignore[arg-type]


def test_declared_fields_exist_on_source_config() -> None:
    names = {f.name for f in fields(SourceConfig)}
    for spec in registry.systems().values():
        for key in spec.config_keys:
            assert key.field is None or key.field in names, (spec.name, key.name)


def test_default_prefixes_come_from_the_entries() -> None:
    prefixes = {
        name: SourceConfig(name="s", system=name, redis_url="redis://h/0").effective_key_prefix
        for name in ("autumn", "rq", "celery")
    }
    assert prefixes == {"autumn": "autumn:jobs", "rq": "rq", "celery": ""}


def test_confirmations_are_worded_by_the_system() -> None:
    assert registry.confirm_step("autumn", Action.RETRY) is None
    rq_stop = registry.confirm_step("rq", Action.STOP)
    celery_stop = registry.confirm_step("celery", Action.STOP)
    assert rq_stop is not None and rq_stop.button == "Stop job" and "{worker}" in rq_stop.html
    assert celery_stop is not None and celery_stop.summary == "Terminate…"
    assert registry.confirm_step("unknown", Action.STOP) is None
    assert registry.action_notes(Action.REVOKE, "cli") == [
        "Broadcast Celery's revoke for tasks a worker holds (prefetched, or waiting for an "
        "eta): workers online now discard them."
    ]
