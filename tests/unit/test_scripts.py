"""Every Lua script has its header and is registered by its adapter."""

from __future__ import annotations

import re

import pytest
import redis.asyncio

from jobbridge.adapters import operator_log, scripts
from jobbridge.adapters.autumn.adapter import AutumnAdapter
from tests.lua_files import FILES, source

ACTION_SCRIPTS = sorted(name for name in FILES if not name.startswith("_"))


def test_every_action_has_a_script() -> None:
    assert ACTION_SCRIPTS == [
        "any_refuse",
        "autumn_cancel",
        "autumn_discard",
        "autumn_retry",
        "celery_cancel",
        "celery_discard",
        "celery_retry",
        "celery_revoke",
        "rq_cancel",
        "rq_discard",
        "rq_retry",
        "rq_stop",
    ]


@pytest.mark.parametrize("name", ACTION_SCRIPTS)
def test_script_header_declares_keys_argv_and_returns(name: str) -> None:
    text = FILES[name]
    header = text.split("\n\n", 1)[0] if "\nlocal " not in text[:50] else ""
    used_keys = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", text.split("-- Returns:")[1])}
    used_argv = {int(n) for n in re.findall(r"ARGV\[(\d+)\]", text.split("-- Returns:")[1])}
    declared_keys = {int(n) for n in re.findall(r"^-- KEYS\[(\d+)\]:", text, re.M)}
    declared_argv = {int(n) for n in re.findall(r"^-- ARGV\[(\d+)\]:", text, re.M)}
    # Every script takes the prelude's shared KEYS and ARGV first, and says so.
    assert "-- KEYS[1..3], ARGV[1..7]: shared by every script (lua/_prelude.lua)" in text
    declared_keys |= {1, 2, 3}
    declared_argv |= set(range(1, 8))
    assert "-- Returns:" in text
    assert used_keys <= declared_keys, f"{name}: KEYS used but not declared"
    assert used_argv <= declared_argv, f"{name}: ARGV used but not declared"
    assert declared_keys == set(range(1, len(declared_keys) + 1))
    assert declared_argv == set(range(1, len(declared_argv) + 1))
    assert header is not None


@pytest.mark.parametrize("name", ACTION_SCRIPTS)
def test_scripts_build_no_key_names(name: str) -> None:
    # Every key goes through KEYS; a key built in Lua is invisible to Cluster and to review.
    body = FILES[name].split("-- Returns:")[1]
    assert not re.search(r"redis\.call\('[A-Z]+', *'", body)
    assert ".. ':" not in body


def test_adapter_registers_every_autumn_script() -> None:
    client = redis.asyncio.Redis()  # not connected: registering sends nothing
    adapter = AutumnAdapter(client, source="s")
    for action in ("cancel", "retry", "discard"):
        assert adapter._scripts[action].script == source("autumn", action)
    assert source("autumn", "retry").startswith(scripts.files()["_prelude"])


def test_prelude_declares_the_shared_header() -> None:
    prelude = scripts.files()["_prelude"]
    for n in range(1, 4):
        assert f"-- KEYS[{n}]:" in prelude
    for n in range(1, 8):
        assert f"-- ARGV[{n}]:" in prelude
    assert len(operator_log.OperatorKeys("jb:", "autumn", "p").script_keys("x")) == 3
    assert len(operator_log.script_argv(0, "a", "s", "x")) == 7


def test_adapter_registers_every_rq_script() -> None:
    from jobbridge.adapters.rq.adapter import RqAdapter

    adapter = RqAdapter(redis.asyncio.Redis(), source="s")
    for action in ("cancel", "retry", "discard", "stop"):
        assert adapter.scripts[action].script == source("rq", action)


def test_adapter_registers_every_celery_script() -> None:
    from jobbridge.adapters.celery.adapter import CeleryAdapter

    adapter = CeleryAdapter(redis.asyncio.Redis(), source="s")
    for action in ("cancel", "retry", "discard", "revoke"):
        assert adapter.scripts[action].script == source("celery", action)
