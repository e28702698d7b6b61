"""Autumn's actions: retry, discard and cancel, one Lua script each (``autumn/lua/*.lua``).

Python reads what the script needs to name its keys (the queue and unique lock a record
names) and refuses a queue that is not one of the source's (:mod:`jobbridge.adapters.keyguard`);
each script re-checks the record before it changes anything (``action_loop``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from jobbridge import offload
from jobbridge.adapters.action_loop import Plan, ScriptCall, act
from jobbridge.adapters.autumn import records
from jobbridge.adapters.autumn.keys import DEFAULT_QUEUE
from jobbridge.adapters.fields import key_text, now_ms
from jobbridge.adapters.keyguard import Refusal, forged, text_problem, unknown
from jobbridge.adapters.outcomes import result
from jobbridge.adapters.values import MAX_VALUE_BYTES, Unread
from jobbridge.model import Action, ActionResult, Outcome

if TYPE_CHECKING:
    from jobbridge.adapters.autumn.adapter import AutumnAdapter

#: the lifecycle entry kind of retry and discard: they act on a dead entry carrying the id,
#: not on a live job of that id (operator.OperatorKeys.lifecycle)
DEAD = "dead"

#: Autumn's own sentences for script replies (jobbridge.adapters.outcomes has the shared ones)
WORDS: dict[str | Outcome, str] = {
    "not waiting": "Job {id} is not waiting in a queue, the delayed set or the blocked set.",
    Outcome.CORRUPT: "Job {id}'s stored record is invalid or is not its own failed record; it "
    "cannot be retried (discard it instead).",
    Outcome.CONFLICT: "An equivalent unique job ({detail}) is already pending or running; "
    "job {id} was not retried.",
}


async def retry(adapter: AutumnAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys

    async def plan() -> Plan:
        stored = await _action_value(adapter, keys.dead_record(job_id))
        if isinstance(stored, Unread):
            if not await _other_type(adapter, keys.dead_record(job_id)):
                return _too_large(Action.RETRY, job_id, stored)
        mode, expected = "retry", b""
        plan = records.RetryPlan("corrupt", "", DEFAULT_QUEUE, None)
        new_id = str(uuid.uuid4())
        now = now_ms()
        if isinstance(stored, Unread):
            pass  # a key of another type: the script refuses it, naming the key
        elif stored is None:
            count, found = await adapter.histories.failed_entry(job_id)
            if count > 1:
                return _ambiguous(Action.RETRY, job_id, count)
            if found is not None:
                mode, expected = "malformed", found.raw
        else:
            expected = stored
            plan = await offload.decode(records.retry_plan, stored, new_id, now)
            mode = plan.mode
            refusal = await _queue_refusal(adapter, plan.queue) if mode == "retry" else None
            if refusal is not None:
                return refusal
        return ScriptCall(
            keys=[
                keys.dead_record(job_id),
                keys.dead,
                keys.record(new_id),
                keys.queue(plan.queue),
                keys.unique(plan.lock),
            ],
            args=[
                expected,
                mode,
                new_id,
                plan.record,
                "1" if plan.lock else "0",
            ],
            words=WORDS,
            now=now,
            entry=DEAD,
        )

    return await act(adapter.scripts, adapter.operator, Action.RETRY, job_id, actor, plan)


async def _queue_refusal(adapter: AutumnAdapter, queue: str) -> Refusal | None:
    """Why a retry may not push onto the queue a dead-record names; None for one of the
    source's queues: configured, discovered, or a list now (a queue with jobs waiting).
    A list no worker's schedule names is never drained (docs/autumn.md §5.8)."""
    problem = text_problem(queue)
    if problem is not None:
        return forged("queue", queue, problem)
    if queue in adapter.all_queues():
        return None
    if await adapter.client.type(adapter.keys.queue(queue)) == b"list":
        return None
    return unknown("queue", queue, "queues (configured, or found holding jobs)")


async def _action_value(adapter: AutumnAdapter, key: str) -> bytes | Unread | None:
    (value,) = await adapter.read_values([key], budget=MAX_VALUE_BYTES)
    return value


async def _other_type(adapter: AutumnAdapter, key: str) -> bool:
    """Whether a key holds another type than a string (its script refuses it)."""
    return key_text(await adapter.client.type(key)) not in ("string", "none")


async def discard(adapter: AutumnAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys

    async def plan() -> Plan:
        entry = b""
        recorded = job_id
        stored = await _action_value(adapter, keys.dead_record(job_id))
        if isinstance(stored, Unread) and not await _other_type(adapter, keys.dead_record(job_id)):
            return _too_large(Action.DISCARD, job_id, stored)
        if stored is None:
            count, found = await adapter.histories.failed_entry(job_id)
            if count > 1:
                return _ambiguous(Action.DISCARD, job_id, count)
            if found is not None:
                entry = found.raw
                recorded = found.entry.summary.recorded_id or job_id
        return ScriptCall(
            keys=[keys.dead_record(recorded), keys.dead], args=[entry], words=WORDS, entry=DEAD
        )

    # One try: the script's check of the entry is the re-check; a changed one is reported.
    return await act(
        adapter.scripts, adapter.operator, Action.DISCARD, job_id, actor, plan, tries=1
    )


async def cancel(adapter: AutumnAdapter, job_id: str, actor: str) -> ActionResult:
    keys = adapter.keys

    async def plan() -> Plan:
        # As Autumn: a non-atomic read to learn the queue and lock; the script's removals
        # are the re-check (a claimed job is in no waiting list any more).
        stored = await _action_value(adapter, keys.record(job_id))
        queue, lock = DEFAULT_QUEUE, None
        if isinstance(stored, bytes):
            queue, lock = await offload.decode(records.cancel_plan, stored)
        # P:queue:<name> is Autumn's own shape and the script only takes this id out of it,
        # so any queue the record names will do, as long as it is a name at all.
        problem = text_problem(queue)
        if problem is not None:
            return forged("queue", queue, problem)
        return ScriptCall(
            keys=[
                keys.record(job_id),
                keys.queue(queue),
                keys.blocked,
                keys.delayed,
                keys.processing,
                keys.unique(lock),
            ],
            args=["1" if lock else "0"],
            words=WORDS,
        )

    return await act(adapter.scripts, adapter.operator, Action.CANCEL, job_id, actor, plan, tries=1)


def _too_large(action: Action, job_id: str, value: Unread) -> ActionResult:
    return result(
        action, Outcome.CORRUPT, job_id, f"Job {job_id}'s record was not read: {value.reason}."
    )


def _ambiguous(action: Action, job_id: str, count: int) -> ActionResult:
    return result(
        action,
        Outcome.CONFLICT,
        job_id,
        f"{count} failed entries name job {job_id}; {action.value} each by its entry id "
        "(shown on its row) instead. Nothing was changed.",
    )
