"""The ACL rules keep up with the scripts: every command a script runs is granted."""

from __future__ import annotations

import re

from jobbridge.acl import (
    READ_COMMANDS,
    SCRIPT_WRITES,
    acl_rules,
    acl_setuser,
    redis_server_of,
    selectors_supported,
    viewer_notes,
)
from jobbridge.adapters.celery.grants import CELERY_OWN_WRITES, CELERY_READS
from jobbridge.settings import SourceConfig
from tests.lua_files import FILES


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


def granted(rules: list[str]) -> set[str]:
    """Every ``+command`` of the rules, those inside a selector ``(...)`` included."""
    return {word for rule in rules for word in rule.strip("()").split() if word.startswith("+")}


def test_celery_sources_grant_what_the_index_script_runs_whatever_the_role() -> None:
    from importlib import resources

    text = (resources.files("jobbridge.adapters") / "celery/lua/index/results.lua").read_text()
    used = {c.lower() for c in re.findall(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]", text)}
    assert used
    source = SourceConfig(name="c", system="celery", redis_url="redis://h/2")
    for role in ("viewer", "operator"):
        for selectors in (True, False):
            rules = acl_rules([source], role, selectors=selectors)  # type: ignore[arg-type]
            assert {f"+{c}" for c in used} <= granted(rules)
            assert "&celery-task-meta-*" in rules
            assert "&/2.celeryev/worker.*" in rules
            assert "&/2.celeryev/task.*" in rules
            # Celery's remote control (inspection, revoke) is for operators only
            assert ("&/2.celery.pidbox" in rules) is (role == "operator")
            assert ("+publish" in granted(rules)) is (role == "operator")
    assert acl_rules([source], "operator")[0] == "~*"  # no prefix: Celery's keys are anywhere


def test_class7_a_celery_viewer_on_redis_7_writes_only_jobbridges_keys() -> None:
    source = SourceConfig(
        name="c", system="celery", redis_url="redis://h/0", jobbridge_prefix="jb[1]:"
    )
    rules = acl_rules([source], "viewer")
    *root, selector = rules
    assert root[0] == "%R~*"  # reads every key, writes none at the root
    assert not {r for r in root if r.startswith("~")}
    assert granted(root) == {f"+{c}" for c in (*READ_COMMANDS, *CELERY_READS)}
    words = selector.strip("()").split()
    assert selector.startswith("(") and selector.endswith(")")
    assert [w for w in words if w.startswith(("~", "%"))] == ["~jb\\[1\\]:celery::*"]
    assert granted([selector]) == {f"+{c}" for c in CELERY_OWN_WRITES}
    line = acl_setuser("jb", [source], "viewer")
    assert line.endswith(" '" + selector + "'")  # one redis-cli argument, backslashes kept
    (note,) = viewer_notes([source], "viewer", selectors=True)
    assert "writes only jb\\[1\\]:celery::*" in note


def test_class7_a_celery_viewer_on_redis_6_2_is_told_what_it_can_write() -> None:
    source = SourceConfig(name="c", system="celery", redis_url="redis://h/0")
    rules = acl_rules([source], "viewer", selectors=False)
    assert rules[0] == "~*" and not any(r.startswith(("%", "(")) for r in rules)
    (note,) = viewer_notes([source], "viewer", selectors=False)
    assert note.startswith("# Redis 6.2 has no key selectors")
    for command in ("SET", "DEL", "HSET", "ZADD"):
        assert command in note and f"+{command.lower()}" in rules
    assert viewer_notes([source], "operator", selectors=False) == []


def test_class7_selectors_by_version() -> None:
    assert selectors_supported("7.0.15") and selectors_supported("7.2") and selectors_supported("8")
    assert not selectors_supported("6.2.912183") and not selectors_supported("6.0")
