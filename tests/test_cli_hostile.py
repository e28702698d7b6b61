"""CLI output when Redis holds hostile text: no value read from Redis reaches the terminal with
a control character in it, and none can forge a line of output.

Runs with ``color=True``: otherwise click strips CSI sequences itself (it does so only when the
output is not a terminal), which would hide a missing clean-up here.
"""

from __future__ import annotations

import json
import logging
import time

import click
import pytest
import redis
from click.testing import CliRunner, Result

from jobbridge.cli import main

pytestmark = pytest.mark.redis

#: retitles the terminal (OSC), clears it (CSI and C1 CSI), rings, forges a line, reverses text
HOSTILE = (
    "x\x1b]0;owned\x07\x1b[2J\x9b2J\r\n2001-01-01 00:00:00Z  autumn  root  retry FORGED: done"
    "\tx\x7f\x00\u202eevil\x1b"
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, color=True)


def assert_terminal_safe(text: str) -> None:
    bad = [
        c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F or c == "\u202e"
    ]
    assert bad == [], repr(text)


def audit_entry(**fields: object) -> str:
    entry = {
        "at_ms": int(time.time() * 1000),
        "actor": "alice",
        "source": "autumn",
        "job_id": "job-1",
        "action": "retry",
        "outcome": "done",
        "new_id": "",
        "message": "",
    }
    entry.update(fields)
    return json.dumps(entry)


def test_audit_cleans_every_field_read_from_redis(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    client.lpush(
        "jobbridge:audit",
        audit_entry(job_id=HOSTILE, new_id=HOSTILE),
        audit_entry(actor=HOSTILE, source=HOSTILE),
        audit_entry(action=HOSTILE, outcome=HOSTILE),
    )
    client.close()
    result = invoke("audit", "--redis", redis_url)
    assert result.exit_code == 0, result.output
    assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)
    lines = result.stdout.splitlines()
    assert len(lines) == 3, lines
    assert not any(line.startswith("2001") for line in lines)  # no forged line
    assert all(line.count("FORGED") == 2 for line in lines)  # two hostile fields per entry
    assert "\ufffd" in result.stdout


def test_audit_json_escapes_controls_and_keeps_the_exact_values(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    client.lpush("jobbridge:audit", audit_entry(job_id=HOSTILE, actor=HOSTILE, new_id=HOSTILE))
    client.close()
    result = invoke("audit", "--redis", redis_url, "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.isascii()  # ensure_ascii=True: every control and non-ASCII escaped
    assert_terminal_safe(result.stdout)
    (entry,) = json.loads(result.stdout)["entries"]
    assert entry["job_id"] == entry["actor"] == entry["new_id"] == HOSTILE


def test_refused_action_cleans_the_actor_and_new_id_of_a_lifecycle_entry(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(
        # a retry's entry: it acts on the job's dead entry (OperatorKeys.lifecycle)
        "jobbridge:autumn:autumn:jobs:lifecycle#dead:job-1",
        json.dumps(
            {
                "job_id": "job-1",
                "status": "retried",
                "at_ms": int(time.time() * 1000),
                "actor": HOSTILE,
                "new_id": HOSTILE,
                "record": "",
            }
        ),
    )
    client.close()
    result = invoke("retry", "--redis", redis_url, "job-1")
    assert result.exit_code == 1, result.output
    assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)
    (line,) = result.stdout.splitlines()
    assert line.startswith("wrong_state: Job job-1 was already retried as x\ufffd]0;owned")
    assert " by x\ufffd]0;owned" in line


def test_doctor_and_detection_notes_clean_hostile_key_names(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    client.zadd("billing:jobs:delayed", {"a": 1})
    client.zadd("evil\x1b[2J\x9b\r\nX:delayed", {"a": 1})
    client.zadd("tenant\x1b]0;owned\x07:delayed", {"a": 1})
    client.close()
    result = invoke("doctor", "--redis", redis_url)
    assert result.exit_code == 0, result.output
    assert_terminal_safe(result.stdout)
    lines = result.stdout.splitlines()
    assert len(lines) == 4, lines  # reachable, then one line per prefix
    assert lines[1].startswith("    autumn (prefix 'billing:jobs'")

    result = invoke("snapshot", "--redis", redis_url)
    assert result.exit_code == 0, result.output
    assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)
    notes = result.stderr.splitlines()
    assert all(note.startswith("note: ") for note in notes), notes


def test_error_messages_are_cleaned(redis_server) -> None:
    # A real (failed) connection: the path comes back inside redis-py's error text.
    url = "unix:///tmp/jobbridge-no\x1b]0;owned\x07such\x1b[2J.sock"
    result = invoke("snapshot", "--redis", url)
    assert result.exit_code == 3, result.output
    assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)
    assert "Error: source 'autumn': Redis unavailable" in result.stderr
    result = invoke("retry", "--redis", url, "job-1")
    assert result.exit_code == 3, result.output
    assert_terminal_safe(result.stdout)
    assert_terminal_safe(result.stderr)
    assert result.stdout.startswith("unavailable: ")


def test_doctor_and_notes_say_how_many_prefixes_need_a_config_file(redis_url) -> None:
    client = redis.Redis.from_url(redis_url)
    for n in range(25):
        client.zadd(f"tenant{n:02}:delayed", {"a": 1})
    client.close()
    result = invoke("doctor", "--redis", redis_url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + 25 + 1, lines
    assert lines[-1] == (
        "    25 Autumn prefixes: --redis watches the first 20; name the others in a config file"
    )
    result = invoke("snapshot", "--redis", redis_url, "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["snapshots"]) == 20
    assert "note: found 25 Autumn prefixes; watching the first 20" in result.stderr


def test_every_error_message_is_cleaned_by_the_group() -> None:
    # The safety net behind the commands' own cleaning: any ClickException a command raises.
    from jobbridge.cli import _Group

    @click.command()
    def boom() -> None:
        raise click.ClickException(HOSTILE)

    assert isinstance(main, _Group)
    group = _Group(commands=[boom])
    result = CliRunner().invoke(group, ["boom"], color=True)
    assert result.exit_code == 1
    assert_terminal_safe(result.stderr)
    assert result.stderr.startswith("Error: x\ufffd]0;owned") and result.stderr.count("\n") == 1


def test_log_lines_are_cleaned() -> None:
    from jobbridge.cli import _LogFormatter

    formatter = _LogFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("jobbridge", logging.WARNING, "", 0, "source %s", (HOSTILE,), None)
    line = formatter.format(record)
    assert_terminal_safe(line)
    assert "\n" not in line and line.startswith("WARNING source x\ufffd]0;owned")
