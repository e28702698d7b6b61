"""Terminal and web text never carry control characters from job data."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from jobbridge.model import Counters, JobRecord, JobStatus, ListName, Page, Snapshot
from jobbridge.render import render_snapshot, table
from jobbridge.text import age, clean, clean_block, no_surrogates
from jobbridge.web.responses import json_response


def test_clean_marks_terminal_escapes_and_bidi_overrides() -> None:
    out = clean("evil\x1b[2J\x1b]0;title\x07name\u202e\u2028x")
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\u2028" not in out
    assert out.startswith("evil\ufffd[2J")


def test_clean_is_one_line_and_cuts_long_text() -> None:
    assert clean("a\nb\tc") == "a b c"
    assert clean("abcdef", 4) == "abc…"
    assert clean(None) == ""


def test_clean_block_keeps_lines() -> None:
    assert clean_block("a\n\x1bb\tc") == "a\n\ufffdb\tc"
    assert clean_block("one\r\ntwo\rspoof") == "one\ntwo\ufffdspoof"
    assert clean_block("x" * 10, 4) == "xxxx\n… [6 more characters]"


def test_age() -> None:
    assert age(None) == "—"
    assert age(5.7) == "5s"
    assert age(125) == "2m 5s"
    assert age(7_300) == "2h 1m"
    assert age(200_000) == "2d 7h"


def test_table_aligns_columns() -> None:
    out = table(["A", "BB"], [["xxx", "y"], ["z", "wwww"]])
    assert out.splitlines() == ["A    BB", "xxx  y", "z    wwww"]


def test_overdue_running_jobs_are_marked_in_the_terminal() -> None:
    taken = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    job = JobRecord(
        source="orders",
        system="autumn",
        id="j1",
        name="noop",
        queue="default",
        status=JobStatus.RUNNING,
        raw_status="processing",
        overdue_since=taken,
    )
    page = Page(items=(job,), total=1, page=1, per_page=25)
    counters = Counters(
        enqueued=0, scheduled=0, running=1, completed_24h=0, failed_7d=0, running_overdue=1
    )
    shot = Snapshot(
        source="orders",
        system="autumn",
        taken_at=taken,
        counters=counters,
        lists={ListName.RUNNING: page},
    )
    out = render_snapshot(shot)
    assert "running 1 (1 overdue)" in out
    assert "[overdue since 2026-11-28 12:00:00Z]" in out


def test_lone_surrogates_never_reach_output() -> None:
    assert clean("a\ud800b") == "a\ufffdb"
    assert clean_block("x\udfff") == "x\ufffd"
    assert no_surrogates("ok \U0001f600") == "ok \U0001f600"
    assert no_surrogates("bad \ud800") == "bad \ufffd"
    assert no_surrogates(7) == 7
    body = json_response({"name": "bad \ud800"}).body
    assert isinstance(body, bytes)
    assert json.loads(body) == {"name": "bad \ud800"}  # escaped, so the bytes are UTF-8
    body.decode("utf-8")
