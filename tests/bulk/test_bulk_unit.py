"""The bulk run's pieces without Redis: a stored sample row reads back as it was written (to
the second), progress, the CLI's exit codes, and stored fields that are not a run."""

from __future__ import annotations

from datetime import UTC, datetime

from jobbridge.bulk.model import BulkRun, BulkSkip, BulkState
from jobbridge.bulk.store import from_json, run_fields, run_of, sample_text
from jobbridge.cli.bulk import _exit_code
from jobbridge.filters import JobFilter
from jobbridge.model import Action, JobRecord, JobStatus, ListName
from jobbridge.serialize import to_json

AT = datetime(2026, 12, 4, 21, 30, 5, tzinfo=UTC)


def row() -> JobRecord:
    return JobRecord(
        source="s",
        system="rq",
        id="job-1",
        name="send_email",
        queue="mail",
        status=JobStatus.FAILED,
        raw_status="failed",
        finished_at=AT,
        last_error="ConnectionError: refused\n",
        actions=(Action.RETRY, Action.DISCARD),
        extra={"group": "g-1"},
        entry=None,
    )


def run(**changes: object) -> BulkRun:
    base = {
        "id": "0123456789abcdef",
        "source": "s",
        "action": Action.RETRY,
        "list": ListName.FAILED,
        "filter": JobFilter(name="send", since=AT),
        "ids": (),
        "actor": "token:ops",
        "created_at": AT,
        "state": BulkState.RUNNING,
        "looked_at": 500,
        "matched": 300,
        "capped": False,
        "sample": (row(),),
        "acted": 150,
        "outcomes": {"done": 149, "wrong_state": 1},
        "skipped": (BulkSkip(job_id="x", outcome="wrong_state", message="already running"),),
        "started_at": AT,
        "finished_at": None,
        "canceled_by": None,
        "error": None,
    }
    return BulkRun(**{**base, **changes})  # type: ignore[arg-type]


def test_a_sample_row_reads_back_as_written() -> None:
    assert from_json(JobRecord, to_json(row())) == row()


def test_stored_fields_read_back_as_the_run() -> None:
    stored = {k: str(v) for k, v in run_fields(run()).items()}
    back = run_of("s", run().id, stored, run().skipped, leased=True)
    assert back == run()
    assert back is not None and back.progress == 0.5
    # Without its lease a running run is interrupted.
    lost = run_of("s", run().id, stored, (), leased=False)
    assert lost is not None and lost.state is BulkState.FAILED and lost.error


def test_fields_that_are_not_a_run_read_as_none_or_defaults() -> None:
    assert run_of("s", "r", {"state": "exploded"}, (), leased=True) is None
    broken = {**{k: str(v) for k, v in run_fields(run()).items()}, "sample": "[{}]", "acted": "x"}
    back = run_of("s", "r", {**broken, "filter": "{not json"}, (), leased=True)
    assert back is not None and back.sample == () and back.acted == 0
    assert back.filter == JobFilter()
    assert sample_text([]) == "[]"


def test_exit_codes() -> None:
    done = run(state=BulkState.DONE, acted=300, outcomes={"done": 300})
    assert _exit_code(done) == 0
    assert _exit_code(run(state=BulkState.DONE, acted=300)) == 1
    assert _exit_code(run(state=BulkState.CANCELED, canceled_by="ops")) == 1
    assert _exit_code(run(state=BulkState.DONE, outcomes={"done": 299, "unavailable": 1})) == 3
    assert _exit_code(run(state=BulkState.FAILED, error="Redis unavailable (refused)")) == 3
    assert done.progress == 1.0 and run(state=BulkState.MATCHED).progress == 0.0
