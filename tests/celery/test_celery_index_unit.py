"""The result index's pure parts: summaries of metas, versions, rows read back, counts."""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from jobbridge.adapters.celery.index_store import COUNT_REPLIES, SCRIPT, IndexSettings
from jobbridge.adapters.celery.index_summary import (
    ARGS_PREVIEW_CHARS,
    BUCKETS,
    ERROR_CHARS,
    READ_BYTES,
    Bucket,
    Entry,
    read_row,
    summarize,
    version_of,
)

DONE = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
DONE_MS = int(DONE.timestamp() * 1000)
SEEN = 1_700_000_000_000


def meta(status: str = "SUCCESS", **fields: object) -> bytes:
    """A meta in Celery's key order, as its Redis backend writes it with result_extended."""
    value: dict[str, object] = {
        "status": status,
        "result": 5,
        "traceback": None,
        "children": [],
        "date_done": DONE.isoformat() if status in ("SUCCESS", "FAILURE", "REVOKED") else None,
        "name": "tasks.add",
        "args": [2, 3],
        "kwargs": {},
        "worker": "w1@host",
        "retries": 0,
        "queue": "celery",
        "task_id": "t1",
    }
    value.update(fields)
    return json.dumps(value).encode()


def entry(raw: bytes, task_id: bytes = b"t1", **kwargs: object) -> Entry:
    found = summarize(task_id, raw, seen_ms=SEEN, **kwargs)  # type: ignore[arg-type]
    assert isinstance(found, Entry), found
    return found


def body(found: Entry) -> dict[str, object]:
    value = json.loads(found.body)
    assert isinstance(value, dict)
    return value


# ------------------------------------------------------------------ versions


def test_versions_follow_a_retried_task_through_its_runs():
    # What a real worker publishes for retrying(2): STARTED and RETRY of each run carry the
    # same retries; the next run's STARTED carries one more.
    sequence = [
        version_of("STARTED", None, 0, SEEN),
        version_of("RETRY", None, 0, SEEN),
        version_of("STARTED", None, 1, SEEN),
        version_of("RETRY", None, 1, SEEN),
        version_of("STARTED", None, 2, SEEN),
        version_of("SUCCESS", DONE_MS, 2, SEEN),
    ]
    assert sequence == sorted(sequence)
    assert len(set(sequence)) == len(sequence)


def test_finished_versions_order_by_date_then_state():
    earlier = version_of("SUCCESS", DONE_MS - 1, None, SEEN)
    assert earlier < version_of("REVOKED", DONE_MS, None, SEEN)
    assert version_of("REVOKED", DONE_MS, None, SEEN) < version_of("FAILURE", DONE_MS, None, SEEN)
    assert version_of("FAILURE", DONE_MS, None, SEEN) < version_of("SUCCESS", DONE_MS, None, SEEN)
    # any finished version outranks any unfinished one
    assert version_of("STARTED", None, 10**20, SEEN) < version_of("REVOKED", 0, None, SEEN)


def test_versions_have_one_width_whatever_the_numbers():
    widths = {
        len(version_of("SUCCESS", -5, None, SEEN)),
        len(version_of("SUCCESS", 10**30, None, SEEN)),
        len(version_of("RETRY", None, None, SEEN)),
        len(version_of("STARTED", None, 3, SEEN)),
    }
    assert widths == {19}


# ------------------------------------------------------------------ summaries


def test_a_success_meta_becomes_a_small_summary():
    found = entry(meta())
    assert found.state == "SUCCESS"
    assert found.score == DONE_MS
    assert found.version == version_of("SUCCESS", DONE_MS, 0, SEEN)
    assert body(found) == {
        "state": "SUCCESS",
        "name": "tasks.add",
        "queue": "celery",
        "worker": "w1@host",
        "args": "tasks.add(2, 3)",
        "retries": 0,
        "ext": True,
    }


def test_a_failure_keeps_its_error_capped():
    result = {"exc_type": "ValueError", "exc_message": ["x" * 150] * 20, "exc_module": "builtins"}
    found = entry(meta("FAILURE", result=result, traceback="Traceback...\n" * 1000))
    error = body(found)["error"]
    assert isinstance(error, str) and error.startswith("ValueError: xxx")
    assert len(error) <= ERROR_CHARS + 1
    assert "Traceback" not in found.body  # the traceback is not copied into the index
    assert len(found.body) < 3000


def test_args_preview_is_capped_and_never_the_args():
    found = entry(meta(args=["y" * 30_000, list(range(3_000))], kwargs={"k": "z" * 10_000}))
    preview = body(found)["args"]
    assert isinstance(preview, str) and preview.startswith("tasks.add('yyy")
    assert len(preview) <= ARGS_PREVIEW_CHARS + 1
    assert len(found.body) < 1000


def test_an_unfinished_meta_is_scored_when_seen():
    found = entry(meta("STARTED", result={"pid": 1, "hostname": "w1@host"}))
    assert found.score == SEEN
    assert found.version == version_of("STARTED", None, 0, SEEN)


def test_a_meta_without_result_extended_has_no_args_preview():
    raw = json.dumps(
        {"status": "REVOKED", "result": None, "date_done": DONE.isoformat(), "task_id": "t1"}
    ).encode()
    found = entry(raw)
    assert body(found) == {"state": "REVOKED", "ext": False}


def test_wrong_types_make_a_row_with_a_problem():
    raw = meta(
        "FAILURE", date_done=5, retries="x", args="a", kwargs=[], name=7, result={"exc_type": 5}
    )
    found = entry(raw)
    summary = body(found)
    assert found.score == SEEN  # no usable date_done: when it was seen
    problem = summary["problem"]
    assert isinstance(problem, str)
    for words in ("date_done", "retries", "args", "name", "no date_done"):
        assert words in problem
    assert summary["ext"] is False


def test_a_task_id_naming_another_task_is_a_problem():
    found = entry(meta(task_id="someone-else"))
    assert "another task" in str(body(found)["problem"])


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"not json at all {", "neither JSON"),
        (b"", "empty"),
        (b"[1, 2, 3]", "not a map"),
        (json.dumps({"result": 1}).encode(), "no status"),
        (meta("PENDING"), "in no bucket"),
        (meta("BOGUS"), "in no bucket"),
        (json.dumps({"status": 5}).encode(), "status is not text"),
    ],
)
def test_metas_that_cannot_be_indexed_say_why(raw, words):
    found = summarize(b"t1", raw, seen_ms=SEEN)
    assert isinstance(found, str)
    assert words in found


class _Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path: Path):
    marker = tmp_path / "ran"
    raw = pickle.dumps({"status": "SUCCESS", "result": _Boom(str(marker))})
    found = summarize(b"t1", raw, seen_ms=SEEN)
    assert isinstance(found, str)
    assert "pickle" in found
    assert not marker.exists()


def test_a_plain_pickled_meta_is_indexed():
    raw = pickle.loads(pickle.dumps(json.loads(meta())))  # the same values, pickled
    found = entry(pickle.dumps(raw))
    assert found.state == "SUCCESS"
    assert body(found)["args"] == "tasks.add(2, 3)"


def test_a_huge_result_is_indexed_from_its_status_and_date():
    raw = meta(result="r" * 5_000_000)
    found = entry(raw)
    assert found.state == "SUCCESS"
    assert found.score == DONE_MS  # date_done comes after the result: read from the tail
    assert body(found)["problem"] == (
        f"meta of {len(raw):,} bytes; indexed from its status and date only"
    )


def test_a_huge_args_meta_takes_its_date_from_the_head():
    raw = meta("FAILURE", args=["a" * 200_000])
    head, tail = raw[:READ_BYTES], raw[-4096:]
    found = entry(head, size=len(raw), tail=tail)
    assert found.state == "FAILURE"
    assert found.score == DONE_MS


def test_a_date_inside_a_string_is_not_taken_for_date_done():
    fake = (DONE + timedelta(days=400)).isoformat()
    raw = meta("STARTED", result="x" * 70_000 + f'"date_done": "{fake}"')
    found = entry(raw)
    assert found.score == SEEN  # an escaped quote precedes it: not a key


def test_a_huge_blob_that_is_no_meta_is_not_indexed():
    found = summarize(b"t1", b"\x00" * 5_000_000, seen_ms=SEEN)
    assert isinstance(found, str) and "readable status" in found


# ------------------------------------------------------------------ rows read back


def test_a_row_reads_back_as_the_task():
    found = entry(meta("FAILURE", result={"exc_type": "E", "exc_message": ["m"]}, parent_id="p"))
    row = '{"v":"' + found.version + '",' + found.body[1:]
    task = read_row(b"t1", row.encode(), Bucket.FAILED, float(DONE_MS))
    assert task.task_id == "t1"
    assert task.state == "FAILURE"
    assert task.bucket is Bucket.FAILED
    assert task.at == DONE.replace(microsecond=123000)
    assert task.error == "E: m"
    assert task.parent_id == "p"
    assert task.args_preview == "tasks.add(2, 3)"
    assert task.extended is True
    assert task.problem is None


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (None, "no summary"),
        (b"garbage{", "not JSON"),
        (b"[1,2]", "not an object"),
        (b"x" * 20_000, "not read"),
        (b'{"state": 5, "retries": "many", "ext": "yes", "name": []}', "not text"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_rows_someone_broke_become_problems(raw, words):
    task = read_row(b"\xffid", raw, Bucket.RUNNING, float("nan"))
    assert words in (task.problem or "")
    assert task.bucket is Bucket.RUNNING
    assert task.at == datetime(1970, 1, 1, tzinfo=UTC)
    assert task.retries is None


def test_counts_read_junk_replies_as_zero():
    from jobbridge.adapters.celery.index import ResultIndex

    take = ResultIndex.take_counts
    counts = take(None, [1, 2, 3, 4, 5, 6, 7])  # type: ignore[arg-type]
    assert counts.totals == dict(zip(BUCKETS, [1, 2, 3, 4, 5], strict=True))
    assert (counts.completed_24h, counts.failed_7d) == (6, 7)
    junk = take(None, [b"x", None, True])  # type: ignore[arg-type]
    assert set(junk.totals.values()) == {0}
    assert COUNT_REPLIES == 7


def test_settings_need_every_window():
    with pytest.raises(ValueError, match="windows_s"):
        IndexSettings(windows_s={Bucket.RUNNING: 1})
    with pytest.raises(ValueError):
        IndexSettings(cap=0)


def test_the_script_ships_with_its_header():
    shipped = resources.files("jobbridge.adapters.celery") / "lua" / "index" / "results.lua"
    assert shipped.read_text(encoding="utf-8") == SCRIPT
    header = [line for line in SCRIPT.splitlines() if line.startswith("-- ")]
    for tag in ("-- KEYS[1]:", "-- KEYS[6]:", "-- ARGV[1]:", "-- ARGV[9]:", "-- Returns:"):
        assert any(line.startswith(tag) for line in header), tag


def test_key_layout():
    import redis.asyncio

    from jobbridge.adapters.celery.index import ResultIndex
    from jobbridge.adapters.celery.keys import CeleryKeys

    client = redis.asyncio.Redis()  # never connects: only names are asked for
    index = ResultIndex(
        client,
        client,
        keys=CeleryKeys(result_global_keyprefix="app*"),
        base="jobbridge:celery::index:",
        source="s",
        lifecycle_prefix="jobbridge:celery::lifecycle:",
    )
    assert [index.key(b) for b in BUCKETS] == [
        f"jobbridge:celery::index:{name}"
        for name in ("running", "retrying", "completed", "failed", "canceled")
    ]
    assert index.rows == "jobbridge:celery::index:rows"
    assert index.backfill_key == "jobbridge:celery::index:backfill"
    assert index.lock_key == "jobbridge:celery::index:backfill:lock"
    assert index.pattern == r"app\*_celery-task-meta-*"  # the prefix matches only itself
