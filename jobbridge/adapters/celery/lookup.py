"""Finding one Celery task in Redis: the waiting message that carries it (a bounded search
of the broker lists), its result meta (status and date only when too large to decode), and
which of a page's held tasks have a REVOKED result. Job pages and actions share them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from jobbridge import offload
from jobbridge.adapters.celery import records
from jobbridge.adapters.celery.messages import (
    UnackedEntry,
    decode_message,
    decode_unacked,
    parse_datetime,
)
from jobbridge.adapters.celery.result_meta import ResultMeta, decode_result_meta
from jobbridge.adapters.values import NOT_A_STRING, is_wrongtype, ok
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from jobbridge.adapters.celery.adapter import CeleryAdapter

#: Messages read per LRANGE while searching a list for one.
SEARCH_CHUNK = 1_000
#: Messages a cancel looks through at most, over all lists.
CANCEL_SEARCH = 5_000_000
#: Bytes of a result meta an action or a job page decodes, and of its end read besides.
META_BYTES = 1_048_576
TAIL_BYTES = 4096
#: Celery writes a result's ``status`` first
STATUS_FIELD = re.compile(rb'"status":\s*"([A-Z]{1,20})"')


def decode_held(raw: bytes) -> UnackedEntry:
    """``decode_unacked`` for the decoding process."""
    return decode_unacked(raw)


def _matches(raw: bytes, job_id: str, needle: bytes, entry: str | None) -> bool:
    if job_id.startswith(records.MESSAGE_ID_PREFIX):
        return records.message_id(raw) == job_id
    if needle not in raw:
        return False
    if entry is not None and records.message_id(raw) != entry:
        return False
    return decode_message(raw).task_id == job_id


async def find_waiting(
    adapter: CeleryAdapter,
    job_id: str,
    *,
    limit: int = CANCEL_SEARCH,
    entry: str | None = None,
) -> tuple[str, int, bytes] | None:
    """(queue, priority step, exact bytes) of the message waiting for a task (with
    ``entry``: that message only, by its digest); None when no list of a shown queue holds
    it within ``limit`` messages. Reads each list by chunks from its head (the next to run)
    and its tail (the newest) in turn: O(depth), for actions and bounded by ``limit`` on a
    job page."""
    needle = job_id.encode("utf-8", "surrogateescape")
    client = adapter.client
    lists = [(q, s) for q in adapter.queues for s in adapter.keys.priority_steps]
    pipe = client.pipeline(transaction=False)
    for queue, step in lists:
        pipe.llen(adapter.keys.step_list(queue, step))
    lengths = [r if isinstance(r, int) else 0 for r in await pipe.execute(raise_on_error=False)]
    budget = limit
    pacer = Pacer()
    for (queue, step), length in zip(lists, lengths, strict=True):
        key = adapter.keys.step_list(queue, step)
        head, tail = 0, 0  # chunks read from the right (head) and left (tail) ends
        while head + tail < length and budget > 0:
            take = min(SEARCH_CHUNK, budget, length - head - tail)
            if head <= tail:
                chunk = cast("list[bytes]", await client.lrange(key, -(head + take), -(head + 1)))
                head += take
            else:
                chunk = cast("list[bytes]", await client.lrange(key, tail, tail + take - 1))
                tail += take
            budget -= take
            for raw in chunk:
                if _matches(raw, job_id, needle, entry):
                    return queue, step, raw
                await pacer.tick()
    return None


@dataclass(frozen=True, slots=True)
class ReadMeta:
    """A task's result as an action or a job page reads it."""

    meta: ResultMeta
    #: its first bytes as stored (at most ``META_BYTES``)
    head: bytes
    #: whether it was read whole; a bigger one gives only its status and date
    whole: bool


_DATE_DONE = re.compile(rb'"date_done":\s*"([^"]{1,64})"')


async def read_meta(adapter: CeleryAdapter, job_id: str) -> ReadMeta | None:
    """A task's result meta; one over ``META_BYTES`` is not decoded: its status and date are
    taken from its first bytes and its last 4 KiB (Celery writes ``status`` first and
    ``date_done`` after the result)."""
    key = adapter.keys.task_meta(job_id)
    pipe = adapter.results.pipeline(transaction=False)
    pipe.strlen(key)
    pipe.getrange(key, 0, META_BYTES - 1)
    pipe.getrange(key, -TAIL_BYTES, -1)
    size, head, tail = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    if is_wrongtype(size):
        # A key of another type is a flagged row, not an unavailable Redis.
        problem = f"its result key {key} {NOT_A_STRING}"
        return ReadMeta(ResultMeta(task_id=job_id, problem=problem), b"", False)
    if not head:
        return None
    if int(size) <= META_BYTES:
        meta = await offload.decode(decode_result_meta, head, inline_bytes=64 * 1024)
        return ReadMeta(meta, head, True)
    status = STATUS_FIELD.search(head) or STATUS_FIELD.search(tail)
    date = _DATE_DONE.search(tail) or _DATE_DONE.search(head)
    done, _ = parse_datetime(date.group(1).decode("ascii", "replace") if date else None)
    meta = ResultMeta(
        task_id=job_id,
        status=status.group(1).decode("ascii") if status else None,
        date_done=done,
        problem=f"the result is {int(size):,} bytes: only its status and date are read "
        f"(results over {META_BYTES:,} bytes are not decoded)",
    )
    return ReadMeta(meta, head, False)


async def revoked_ids(adapter: CeleryAdapter, task_ids: Sequence[str]) -> set[str]:
    """Which of a page's held tasks have a REVOKED result: the first bytes of each meta
    (Celery writes ``status`` first), one pipelined GETRANGE per row."""
    if not task_ids:
        return set()
    pipe = adapter.results.pipeline(transaction=False)
    for task_id in task_ids:
        pipe.getrange(adapter.keys.task_meta(task_id), 0, 255)
    heads = await pipe.execute(raise_on_error=False)
    revoked = set()
    for task_id, head in zip(task_ids, heads, strict=True):
        found = STATUS_FIELD.search(head) if isinstance(head, bytes) else None
        if found is not None and found.group(1) == b"REVOKED":
            revoked.add(task_id)
    return revoked
