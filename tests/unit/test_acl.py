"""The ACL rules keep up with the scripts: every command a script runs is granted."""

from __future__ import annotations

import re

from jobbridge.acl import READ_COMMANDS, SCRIPT_WRITES, acl_rules, acl_setuser, redis_server_of
from jobbridge.adapters.scripts import FILES
from jobbridge.settings import SourceConfig


def test_every_command_a_script_runs_is_granted_to_operators() -> None:
    used = {
        command.lower()
        for text in FILES.values()
        for command in re.findall(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]", text)
    }
    assert used, "no redis.call found: the pattern no longer matches the scripts"
    assert used <= set(READ_COMMANDS) | set(SCRIPT_WRITES)
    rules = acl_rules(
        [SourceConfig(name="s", system="autumn", redis_url="redis://h/0")], "operator"
    )
    assert {f"+{c}" for c in used} <= set(rules)


def test_viewers_get_no_script_or_write_command() -> None:
    rules = acl_rules([SourceConfig(name="s", system="autumn", redis_url="redis://h/0")], "viewer")
    granted = {r[1:] for r in rules if r.startswith("+")}
    assert granted == set(READ_COMMANDS)
    assert not granted & {"eval", "evalsha", "set", "del", "lpush", "lrem"}


def test_one_server_whatever_the_database_credentials_or_spelling() -> None:
    assert redis_server_of("redis://u:p@h:6379/2") == "redis://h:6379"
    assert redis_server_of("redis://H/0") == "redis://h:6379"
    assert redis_server_of("redis://localhost:6379/1") == redis_server_of("redis://127.0.0.1/3")
    assert redis_server_of("rediss://h:6380/0") == "rediss://h:6380"
    assert redis_server_of("redis://[::1]:7000/0") == "redis://[::1]:7000"
    assert redis_server_of("unix://u:p@/run/redis.sock?db=3") == "unix:///run/redis.sock"


def test_the_line_resets_the_user_first() -> None:
    line = acl_setuser(
        "jb", [SourceConfig(name="s", system="autumn", redis_url="redis://h/0")], "viewer"
    )
    assert line.startswith("ACL SETUSER jb reset on >CHANGE-ME ~autumn:jobs:* ~jobbridge:* -@all ")


def test_celery_sources_grant_what_the_index_script_runs_whatever_the_role() -> None:
    from importlib import resources

    text = (resources.files("jobbridge.adapters") / "lua/index/celery_results.lua").read_text()
    used = {c.lower() for c in re.findall(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]", text)}
    assert used
    source = SourceConfig(name="c", system="celery", redis_url="redis://h/2")
    for role in ("viewer", "operator"):
        rules = acl_rules([source], role)  # type: ignore[arg-type]
        assert {f"+{c}" for c in used} <= set(rules)
        assert rules[0] == "~*"  # no prefix: Celery's keys are anywhere
        assert "&celery-task-meta-*" in rules and "&/2.celery.pidbox" in rules
        assert "&/2.celeryev/worker.*" in rules
        assert "&/2.celeryev/task.*" in rules
