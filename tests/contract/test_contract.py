"""Every registered system through the same behaviours, over the HTTP API (design.md, Actions):
counters equal the system's own counts; every job shows in its list; cancel, retry and discard
do what the design says or refuse with the right outcome word; an unknown id is not_found; a
record jobbridge cannot read is a flagged row; a viewer cannot act.

Systems are set up by their harness (tests/contract/harness.py) and parametrised from the
registry (tests/contract/conftest.py). Sources that read in the background (Celery's result
index) show a change shortly after it happens, so reads are polled (:func:`eventually`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from jobbridge.adapters import systems
from jobbridge.model import JobRecord
from jobbridge.serialize import json_fields
from tests.contract.conftest import VIEWER_TOKEN, Api
from tests.contract.harness import REQUIRED_STATES, State, SystemHarness
from tests.contract.harnesses import HARNESSES, registered_systems
from tests.integration.processes import scaled

pytestmark = pytest.mark.redis

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
    """``check()``'s value once it stops raising AssertionError; its last error after
    ``timeout`` (stretched by the machine's load)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


def ids(body: dict[str, Any], state: State) -> list[str]:
    return [item["id"] for item in body["lists"][state.value]["items"]]


def counter(counters: dict[str, Any], state: State) -> int:
    """jobbridge's counter of a state: the windowed count where the system has windows, else
    the entries it keeps."""
    if state is State.COMPLETED:
        value = counters["completed_24h"]
        return int(value if value is not None else counters["completed_kept"])
    if state is State.FAILED:
        value = counters["failed_7d"]
        return int(value if value is not None else counters["failed_kept"])
    return int(counters[state.value])


async def listed(api: Api, made: dict[State, list[str]]) -> dict[str, Any]:
    """The snapshot once every seeded job shows in its state's list."""

    async def check() -> dict[str, Any]:
        body = await api.snapshot()
        for state, job_ids in made.items():
            assert set(job_ids) <= set(ids(body, state)), (state, job_ids, body["lists"])
        return body

    return await eventually(check)


def test_every_registered_system_has_a_harness() -> None:
    assert set(registered_systems()) <= set(HARNESSES), "systems without a contract harness"


def test_every_harness_seeds_what_the_contract_needs(system: str, harness: SystemHarness) -> None:
    assert REQUIRED_STATES <= harness.states


async def test_counters_equal_the_systems_own_counts(harness: SystemHarness, api: Api) -> None:
    made = harness.seed({state: 2 for state in harness.states})
    own = harness.counts()
    for state in harness.states:
        assert own[state] >= 2, (state, own)

    async def check() -> None:
        body = await api.snapshot()
        counters = body["counters"]
        assert {s: counter(counters, s) for s in State} == own, counters
        for state in State:
            assert body["lists"][state.value]["total"] == own[state], state

    await listed(api, made)
    await eventually(check)


async def test_every_job_appears_in_its_list_only(harness: SystemHarness, api: Api) -> None:
    made = harness.seed({state: 1 for state in harness.states})
    body = await listed(api, made)
    for state, job_ids in made.items():
        for other in State:
            if other is not state:
                assert not set(job_ids) & set(ids(body, other)), (state, other)
        for job_id in job_ids:
            status, detail = await api.job(job_id)
            assert status == 200, detail
            assert (detail["id"], detail["status"]) == (job_id, state.value), detail


async def test_cancel_removes_a_waiting_job_once(harness: SystemHarness, api: Api) -> None:
    made = harness.seed({State.ENQUEUED: 2})
    await listed(api, made)
    gone, kept = made[State.ENQUEUED]
    before = harness.counts()[State.ENQUEUED]

    status, body = await api.act(gone, "cancel")
    assert (status, body["outcome"], body["id"]) == (200, "canceled", gone), body
    assert harness.counts()[State.ENQUEUED] == before - 1

    async def check() -> None:
        snapshot = await api.snapshot()
        assert gone not in ids(snapshot, State.ENQUEUED)
        assert kept in ids(snapshot, State.ENQUEUED)

    await eventually(check)
    status, detail = await api.job(gone)
    assert status == 200, detail
    assert "canceled" in [entry["status"] for entry in detail["lifecycle"]], detail
    # Canceled once: a second cancel is refused and changes nothing.
    status, body = await api.act(gone, "cancel")
    assert (status, body["error"]) == (409, "wrong_state"), body
    assert harness.counts()[State.ENQUEUED] == before - 1


async def test_cancel_of_a_job_no_longer_waiting_is_refused(
    harness: SystemHarness, api: Api
) -> None:
    # A job a worker took (where the harness can make one) and a terminally failed one.
    made = harness.seed(
        {state: 1 for state in (State.RUNNING, State.FAILED) if state in harness.states}
    )
    await listed(api, made)
    before = harness.counts()
    for state, (job_id,) in made.items():
        status, body = await api.act(job_id, "cancel")
        if state is State.RUNNING:
            assert (status, body["error"]) == (409, "wrong_state"), body
        else:
            # Autumn answers not_found here (cancel looks only where waiting jobs are; its
            # dead entry is no job record), RQ and Celery wrong_state: both refuse.
            assert (status, body["error"]) in ((409, "wrong_state"), (404, "not_found")), body
    assert harness.counts() == before


async def test_retry_enqueues_a_new_job_once(harness: SystemHarness, api: Api) -> None:
    made = harness.seed({State.FAILED: 1})
    await listed(api, made)
    (failed,) = made[State.FAILED]
    before = harness.counts()[State.ENQUEUED]

    status, body = await api.act(failed, "retry")
    assert (status, body["outcome"], body["id"]) == (200, "retried", failed), body
    new_id = body["new_id"]
    assert new_id and new_id != failed
    assert harness.counts()[State.ENQUEUED] == before + 1

    async def check() -> None:
        snapshot = await api.snapshot()
        assert new_id in ids(snapshot, State.ENQUEUED)
        assert failed not in ids(snapshot, State.FAILED)

    await eventually(check)
    status, detail = await api.job(failed)
    assert status == 200, detail
    retried = [e for e in detail["lifecycle"] if e["status"] == "retried"]
    assert [e["new_id"] for e in retried] == [new_id], detail["lifecycle"]
    # A second retry of the same failed job makes nothing new.
    status, body = await api.act(failed, "retry")
    assert (status, body["error"]) == (409, "wrong_state"), body
    assert harness.counts()[State.ENQUEUED] == before + 1


async def test_discard_removes_a_failed_job_once(harness: SystemHarness, api: Api) -> None:
    made = harness.seed({State.FAILED: 2})
    await listed(api, made)
    gone, kept = made[State.FAILED]

    status, body = await api.act(gone, "discard")
    assert (status, body["outcome"], body["id"]) == (200, "discarded", gone), body

    async def check() -> None:
        snapshot = await api.snapshot()
        assert gone not in ids(snapshot, State.FAILED)
        assert kept in ids(snapshot, State.FAILED)

    await eventually(check)
    status, detail = await api.job(gone)
    assert status == 200, detail
    assert "discarded" in [entry["status"] for entry in detail["lifecycle"]], detail
    status, body = await api.act(gone, "discard")
    assert (status, body["error"]) == (409, "wrong_state"), body


async def test_retry_and_discard_refuse_a_job_that_has_not_failed(
    harness: SystemHarness, api: Api
) -> None:
    made = harness.seed({State.ENQUEUED: 1})
    await listed(api, made)
    (waiting,) = made[State.ENQUEUED]
    before = harness.counts()
    # Retry and discard look for the job in the failed list only: one not there is not found.
    for action in ("retry", "discard"):
        status, body = await api.act(waiting, action)
        assert (status, body["error"]) == (404, "not_found"), (action, body)
        assert body["message"] == f"Job {waiting} is not in the failed list.", body
    assert harness.counts() == before
    assert waiting in ids(await api.snapshot(), State.ENQUEUED)


async def test_an_unknown_id_is_not_found(harness: SystemHarness, api: Api) -> None:
    harness.seed({State.ENQUEUED: 1, State.FAILED: 1})
    before = harness.counts()
    for action in ("cancel", "retry", "discard"):
        status, body = await api.act("no-such-job", action)
        assert (status, body["error"], body["id"]) == (404, "not_found", "no-such-job"), body
    status, body = await api.job("no-such-job")
    assert status == 404, body
    assert harness.counts() == before


async def test_a_hostile_record_is_a_flagged_row(harness: SystemHarness, api: Api) -> None:
    made = harness.seed({State.ENQUEUED: 1, State.FAILED: 1})
    where = harness.hostile()
    body = await listed(api, made)

    async def check() -> list[dict[str, Any]]:
        items = (await api.snapshot())["lists"][where.value]["items"]
        flagged = [item for item in items if item["problem"]]
        assert len(flagged) == 1, items
        return flagged

    await eventually(check)
    status, page = await api.get(f"/jobs/{body['source']}")
    assert status == 200, page


async def test_a_viewer_reads_but_cannot_act(harness: SystemHarness, api: Api) -> None:
    made = harness.seed({State.ENQUEUED: 1, State.FAILED: 1})
    await listed(api, made)
    (waiting,), (failed,) = made[State.ENQUEUED], made[State.FAILED]
    before = harness.counts()
    status, _ = await api.get("/api/sources/contract/snapshot", token=VIEWER_TOKEN)
    assert status == 200
    for job_id, action in ((waiting, "cancel"), (failed, "retry"), (failed, "discard")):
        status, body = await api.act(job_id, action, token=VIEWER_TOKEN)
        assert status == 403, (action, body)
    assert harness.counts() == before
    body = await api.snapshot()
    assert waiting in ids(body, State.ENQUEUED) and failed in ids(body, State.FAILED)


#: row fields jobbridge fills whatever the system: where the row came from, what may be done
#: with it, why it could not be read, the job a retry made (lifecycle rows)
JOBBRIDGE_FIELDS = frozenset({"source", "system", "actions", "problem", "new_id"})
#: a field's JSON value when the row does not fill it
EMPTY: tuple[object, ...] = (None, "", [], {})


async def test_the_columns_a_system_declares_cover_what_its_rows_fill(
    system: str, harness: SystemHarness, api: Api
) -> None:
    """``SystemSpec.columns`` (the JobRecord fields its rows fill) holds every field one of its
    rows has, so a reader of the registry may trust it."""
    made = harness.seed({state: 2 for state in harness.states})
    body = await listed(api, made)
    fields = {f.key: f.attr for f in json_fields(JobRecord)}
    filled: set[str] = set()
    for state in State:
        for item in body["lists"][state.value]["items"]:
            filled |= {fields[key] for key, value in item.items() if value not in EMPTY}
    declared = set(systems()[system].columns)
    assert filled - JOBBRIDGE_FIELDS <= declared, sorted(filled - JOBBRIDGE_FIELDS - declared)
