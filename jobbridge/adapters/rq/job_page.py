"""One RQ job's page: its hash wherever the job is (its place from ZSCOREs over its
``origin`` queue's registries, never a scan of a queue list), its payload, its latest result
and its lifecycle entry; a job known only by its lifecycle entry, or only by a registry that
still lists its id, still shows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from jobbridge import offload
from jobbridge.adapters.fields import MAX_NAME_CHARS, text
from jobbridge.adapters.payloads import MAX_INPUT_BYTES
from jobbridge.adapters.rq import calls, hashes, records
from jobbridge.adapters.rq.hashes import Found, JobHash, Where
from jobbridge.adapters.rq.reads import HashesRead, first_members, read_hashes
from jobbridge.adapters.values import MAX_VALUE_BYTES, is_wrongtype, ok
from jobbridge.model import JobDetail, JobStatus, LifecycleEntry

if TYPE_CHECKING:
    from jobbridge.adapters.rq.adapter import RqAdapter

#: Bytes of each large field the job page reads: what payloads decodes at most (decoded in
#: the worker process when big).
DETAIL_VALUE_BYTES = MAX_INPUT_BYTES
#: Execution ids of one job looked at on its page.
MAX_EXECUTIONS = 5

#: the registries a job page looks an id up in, in the order that decides its place
_PLACES = (
    Where.WIP,
    Where.SCHEDULED,
    Where.DEFERRED,
    Where.FAILED,
    Where.FINISHED,
    Where.CANCELED,
    Where.READY,
)
_DETAIL_CAPS: Mapping[str, int] = dict.fromkeys(hashes.LARGE_FIELDS, DETAIL_VALUE_BYTES)


async def job(adapter: RqAdapter, job_id: str) -> JobDetail | None:
    """One job wherever it is, with why its lifecycle entry could not be read if so."""
    lifecycle, problem = await adapter.operator.entry(job_id)
    detail = await _job(adapter, job_id, lifecycle)
    return adapter.operator.with_problem(job_id, detail, problem)


async def _job(
    adapter: RqAdapter, job_id: str, lifecycle: LifecycleEntry | None
) -> JobDetail | None:
    read = await read_hashes(
        adapter.client, adapter.keys, [job_id], _DETAIL_CAPS, MAX_VALUE_BYTES, [job_id]
    )
    job = read.hashes[job_id]
    if job.exists:
        found, execution = await _place(adapter, job_id, job)
        return await _detail(adapter, job_id, job, found, execution, read, lifecycle)
    if lifecycle is not None and lifecycle.record is not None:
        record = lifecycle.record
        return JobDetail(
            job=record,
            payload=record.payload_preview,
            payload_kind="copy kept when the action ran",
            lifecycle=(lifecycle,),
        )
    return await _dangling(adapter, job_id, read)


async def _place(adapter: RqAdapter, job_id: str, job: JobHash) -> tuple[Found, dict[bytes, bytes]]:
    """Where a job with a hash is: ZSCORE of its id in each registry of its ``origin``
    queue (wip members by their execution ids), and its running execution's hash."""
    origin = text(job.fields.get("origin")) or ""
    if not origin or len(origin) > MAX_NAME_CHARS:
        return Found(Where.HASH, ""), {}
    keys = adapter.keys
    executions = await first_members(adapter.client, keys.executions(job_id), MAX_EXECUTIONS)
    pipe = adapter.client.pipeline(transaction=False)
    for kind in _PLACES:
        pipe.zscore(keys.registry(kind.value, origin), job_id)
    for execution_id in executions:
        pipe.zscore(keys.wip(origin), f"{job_id}:{execution_id}")
        pipe.hgetall(keys.execution(job_id, execution_id))
    replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    scores = [None if is_wrongtype(r) else r for r in replies[: len(_PLACES)]]
    rest = replies[len(_PLACES) :]
    for index, execution_id in enumerate(executions):
        score, info = rest[2 * index], rest[2 * index + 1]
        if score is not None and not is_wrongtype(score):
            detail = info if isinstance(info, dict) else {}
            return Found(Where.WIP, origin, float(score), execution_id), detail
    for kind, score in zip(_PLACES, scores, strict=True):
        if score is not None:
            return Found(kind, origin, float(score)), {}
    status = text(job.fields.get("status"))
    where = Where.QUEUE if status in ("queued", "created") else Where.HASH
    return Found(where, origin), {}


async def _detail(
    adapter: RqAdapter,
    job_id: str,
    job: JobHash,
    found: Found,
    execution: Mapping[bytes, bytes],
    read: HashesRead,
    lifecycle: LifecycleEntry | None,
) -> JobDetail:
    data = job.fields.get("data")
    call, call_text, serializer = None, "", ""
    if data:
        # Always off the loop: a few stored bytes may inflate to MAX_INFLATED_BYTES.
        call, call_text, serializer = await offload.decode(calls.detail_call, data, inline_bytes=0)
    row = await adapter.row(job, found, job_id, read, call)
    if row.worker is None and row.status is JobStatus.RUNNING and execution:
        worker = hashes.cap_name(text(execution.get(b"worker_name")))
        row = replace(row, worker=worker)
    if found.where is Where.WIP:
        row = records.with_deadline(row, found.score, time.time())
    payload = records.detail_payload(
        call_text or row.payload_preview,
        await _described(job.fields.get("meta")),
        await _result_text(adapter, read.results.get(job_id)),
        await _described(job.fields.get("result"), "legacy result: "),
    )
    kind = serializer or ("description" if not data else "unknown")
    return records.to_detail(row, job, payload, kind, lifecycle)


async def _result_text(adapter: RqAdapter, newest: tuple[bytes, dict[bytes, bytes]] | None) -> str:
    if newest is None:
        return ""
    entry_id, entry = newest
    value = entry.get(b"return_value")
    shown = ""
    if value:
        shown = await offload.decode(
            calls.describe_stream_value, value, inline_bytes=calls.ROW_INFLATED_BYTES
        )
    return calls.describe_result(entry_id, entry, shown)


async def _dangling(adapter: RqAdapter, job_id: str, read: HashesRead) -> JobDetail | None:
    """An id without a hash that a registry of a shown queue still holds (the page of a
    flagged row); None when none does. O(queues) ZSCOREs."""
    queues = adapter.queues
    pipe = adapter.client.pipeline(transaction=False)
    for name in queues:
        for kind in _PLACES:
            pipe.zscore(adapter.keys.registry(kind.value, name), job_id)
    replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    for index, score in enumerate(replies):
        if score is None or is_wrongtype(score):
            continue
        name, kind = queues[index // len(_PLACES)], _PLACES[index % len(_PLACES)]
        found = Found(kind, name, float(score))
        row = await adapter.row(read.hashes[job_id], found, job_id, read)
        result = await _result_text(adapter, read.results.get(job_id))
        return JobDetail(job=row, payload=result, payload_kind="not stored")
    return None


async def _described(raw: bytes | None, label: str = "") -> str:
    """A serialized value as text for the job page (decoded in the worker process if big)."""
    if not raw:
        return ""
    return label + await offload.decode(
        calls.describe_value, raw, inline_bytes=calls.ROW_INFLATED_BYTES
    )
