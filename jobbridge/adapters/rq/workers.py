"""What RQ's own processes register: its workers (``<prefix>:workers``) and its cron
schedulers with their cron jobs (rq/cron.py), read within fixed caps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import redis.exceptions

from jobbridge.adapters.fields import key_text, text
from jobbridge.adapters.rq import hashes, worker_hashes
from jobbridge.adapters.rq.reads import first_members
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.model import Schedule, Worker

if TYPE_CHECKING:
    from jobbridge.adapters.rq.adapter import RqAdapter

#: Workers shown at most, and the set size read whole (larger: one SSCAN step).
MAX_WORKERS = 200
MAX_WORKER_SET_READ = 1000
#: Cron schedulers and cron jobs read at most, and the largest ``cron_jobs`` field read.
MAX_CRON_SCHEDULERS = 10
MAX_SCHEDULES = 100
MAX_CRON_FIELD_BYTES = 1024 * 1024


async def workers(adapter: RqAdapter) -> tuple[Worker, ...]:
    """The workers in ``<prefix>:workers`` (at most 200, by name): one pipelined HMGET
    of their hashes, plus one member of each RQ 3 worker's executions set (its current
    job). A listed worker whose hash expired, or that recorded its death, is dead."""
    names = await _worker_names(adapter)
    if not names:
        return ()
    pipe = adapter.client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(adapter.keys.worker(name), list(worker_hashes.WORKER_FIELDS))
        pipe.srandmember(adapter.keys.worker_executions(name))
    replies = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    out = []
    for index, name in enumerate(names):
        values, member = replies[2 * index], replies[2 * index + 1]
        if is_wrongtype(values):
            out.append(
                Worker(
                    name=hashes.cap_name(name) or "",
                    state="?",
                    problem="its key holds another type than a hash",
                )
            )
            continue
        member = None if is_wrongtype(member) else member
        out.append(worker_hashes.to_worker(name, values, member))
    return tuple(out)


async def _worker_names(adapter: RqAdapter) -> list[str]:
    key = adapter.keys.workers
    members: Iterable[bytes | str]
    try:
        size = await adapter.client.scard(key)
        if size > MAX_WORKER_SET_READ:
            _, members = await adapter.client.sscan(key, 0, count=MAX_WORKER_SET_READ)
        else:
            members = await adapter.client.smembers(key)
    except redis.exceptions.ResponseError as exc:
        if not is_wrongtype(exc):
            raise
        return []
    names = {adapter.keys.worker_name_of_key(key_text(m)) for m in members}
    return sorted(n for n in names if n)[:MAX_WORKERS]


async def schedules(adapter: RqAdapter) -> tuple[Schedule, ...]:
    """RQ's cron jobs (rq/cron.py), as the live cron schedulers list them: the newest
    ``MAX_CRON_SCHEDULERS`` schedulers' ``cron_jobs`` JSON, deduplicated, each with the
    status of the last job it enqueued. Bounded by the caps above."""
    names = await first_members(
        adapter.client, adapter.keys.cron_schedulers, MAX_CRON_SCHEDULERS, desc=True
    )
    if not names:
        return ()
    fields = await _cron_fields(adapter, names)
    schedules: dict[tuple[str, str], Schedule] = {}
    for raw in fields:
        found, _ = worker_hashes.cron_schedules(raw, MAX_SCHEDULES)
        for schedule in found:
            schedules.setdefault((schedule.name, schedule.schedule), schedule)
    return await _with_last_status(adapter, list(schedules.values())[:MAX_SCHEDULES])


async def _cron_fields(adapter: RqAdapter, names: Sequence[str]) -> list[bytes]:
    pipe = adapter.client.pipeline(transaction=False)
    for name in names:
        pipe.hstrlen(adapter.keys.cron_scheduler(name), "cron_jobs")
    sizes = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    wanted = [
        n
        for n, s in zip(names, sizes, strict=True)
        if not is_wrongtype(s) and 0 < int(s) <= MAX_CRON_FIELD_BYTES
    ]
    if not wanted:
        return []
    pipe = adapter.client.pipeline(transaction=False)
    for name in wanted:
        pipe.hget(adapter.keys.cron_scheduler(name), "cron_jobs")
    values = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    return [v for v in values if isinstance(v, bytes)]


async def _with_last_status(adapter: RqAdapter, schedules: list[Schedule]) -> tuple[Schedule, ...]:
    """Each schedule with the status of the newest job its cron job enqueued."""
    if not schedules:
        return ()
    pipe = adapter.client.pipeline(transaction=False)
    for schedule in schedules:
        pipe.zrange(adapter.keys.cron_job_history(schedule.name), 0, 0, desc=True)
    newest = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    ids = [key_text(r[0]) if isinstance(r, list) and r else None for r in newest]
    pipe = adapter.client.pipeline(transaction=False)
    for job_id in ids:
        if job_id is not None:
            pipe.hget(adapter.keys.job(job_id), "status")
    statuses = iter([ok(r) for r in await pipe.execute(raise_on_error=False)])
    out = []
    for schedule, job_id in zip(schedules, ids, strict=True):
        if job_id is not None:
            status = next(statuses)
            word = None if is_wrongtype(status) else hashes.cap_name(text(status))
            schedule = replace(schedule, last_status=word)
        out.append(schedule)
    return tuple(out)
