"""Bounded reads of RQ's keys that the list pages and the job page share: job hashes within
a byte budget (with their newest results), in pipelines of a bounded size, and the first
members of a sorted set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from jobbridge.adapters.fields import key_text
from jobbridge.adapters.rq import calls, hashes
from jobbridge.adapters.rq.hashes import JobHash
from jobbridge.adapters.rq.keys import RqKeys
from jobbridge.adapters.values import is_wrongtype, ok

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Job hashes per pipeline of a read (3-5 commands each; see ``batched``).
HASHES_PER_PIPELINE = 25


@dataclass(slots=True)
class HashesRead:
    """The page's job hashes and the latest results of the ids that wanted one."""

    hashes: dict[str, JobHash] = field(default_factory=dict)
    #: id -> (stream entry id, fields) of its newest result; None when it has none
    results: dict[str, tuple[bytes, dict[bytes, bytes]] | None] = field(default_factory=dict)
    #: ids whose results key is not a stream
    bad_results: set[str] = field(default_factory=set)


async def batched(
    client: Redis, count: int, per: int, add: Callable[[Any, int], None]
) -> list[list[Any]]:
    """Each item's replies, its commands queued by ``add(pipe, index)``, ``per`` items to
    a pipeline, one pipeline after the other.

    redis-py packs a pipeline's commands and parses its replies in one go: a single
    pipeline for a page of a hundred rows (or a hundred queues' counters) would hold the
    event loop for tens of ms. Pipelines of a bounded size hold it a few ms each, and
    other requests run between them; pipelines in flight together would not help, as
    their replies are parsed back to back. Costs one round trip per ``per`` items.
    """
    out: list[list[Any]] = []
    for start in range(0, count, per):
        pipe = client.pipeline(transaction=False)
        sizes = []
        for index in range(start, min(start + per, count)):
            before = len(pipe.command_stack)
            add(pipe, index)
            sizes.append(len(pipe.command_stack) - before)
        replies = iter([ok(r) for r in await pipe.execute(raise_on_error=False)])
        out += [[next(replies) for _ in range(size)] for size in sizes]
    return out


async def read_hashes(
    client: Redis,
    keys: RqKeys,
    ids: Sequence[str],
    caps: Mapping[str, int],
    budget: int,
    results_for: Iterable[str] = (),
) -> HashesRead:
    """Job hashes, bounded: first EXISTS, one HMGET of the small fields and HSTRLEN of
    each large field in ``caps`` (plus the newest results-stream entry of
    ``results_for``); then one HMGET of the large fields within their cap while
    ``budget`` (bytes, for all ids) lasts."""
    read = HashesRead()
    large = tuple(caps)
    wants = set(results_for)

    def add(pipe: Any, index: int) -> None:
        job_id = ids[index]
        key = keys.job(job_id)
        pipe.exists(key)
        pipe.hmget(key, list(hashes.SMALL_FIELDS))
        for name in large:
            pipe.hstrlen(key, name)
        if job_id in wants:
            pipe.xrevrange(keys.results(job_id), "+", "-", count=1)

    replies = await batched(client, len(ids), HASHES_PER_PIPELINE, add)
    for job_id, reply in zip(ids, replies, strict=True):
        read.hashes[job_id] = _first_read(reply[: 2 + len(large)], large)
        if job_id not in wants:
            continue
        newest = reply[2 + len(large)]
        if is_wrongtype(newest):
            read.bad_results.add(job_id)
        else:
            read.results[job_id] = _newest(newest)
    await _read_large(client, keys, read, caps, budget)
    return read


async def _read_large(
    client: Redis, keys: RqKeys, read: HashesRead, caps: Mapping[str, int], budget: int
) -> None:
    plan: list[tuple[str, list[str]]] = []
    for job_id, job in read.hashes.items():
        names = []
        for name, limit in caps.items():
            size = job.sizes.get(name, 0)
            if 0 < size <= min(limit, budget):
                budget -= size
                names.append(name)
        if names:
            plan.append((job_id, names))
    if not plan:
        return

    def add(pipe: Any, index: int) -> None:
        job_id, names = plan[index]
        pipe.hmget(keys.job(job_id), names)

    replies = await batched(client, len(plan), HASHES_PER_PIPELINE, add)
    for (job_id, names), (values,) in zip(plan, replies, strict=True):
        job = read.hashes[job_id]
        if is_wrongtype(values):
            read.hashes[job_id] = replace(job, wrong_type=True)
            continue
        fields = dict(job.fields)
        fields.update({n: v for n, v in zip(names, values, strict=True) if v is not None})
        read.hashes[job_id] = replace(job, fields=fields)


async def first_members(client: Redis, key: str, count: int, *, desc: bool = False) -> list[str]:
    """The first ``count`` members of a sorted set; none when the key is another type."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(key, 0, count - 1, desc=desc)
    (reply,) = await pipe.execute(raise_on_error=False)
    reply = ok(reply)
    if is_wrongtype(reply) or not isinstance(reply, list):
        return []
    return [key_text(m) for m in reply]


def latest_error(job: JobHash, read: HashesRead, job_id: str) -> tuple[str | None, str | None]:
    """A failed job's error: its newest result's ``exc_string``, else the legacy hash
    ``exc_info``."""
    if job_id in read.bad_results:
        return None, "its results key holds another type than a stream"
    newest = read.results.get(job_id)
    error, problem = calls.result_error(newest[1] if newest else None)
    if error is None and problem is None:
        error, problem = calls.legacy_error(job.fields.get("exc_info"))
    return error, problem


def _first_read(replies: Sequence[Any], large: Sequence[str]) -> JobHash:
    """A hash from its EXISTS, small-field HMGET and large-field HSTRLEN replies."""
    exists, values, *sizes = replies
    if is_wrongtype(values) or any(is_wrongtype(s) for s in sizes):
        return JobHash(exists=True, wrong_type=True)
    if not exists:
        return JobHash(exists=False)
    fields = {n: v for n, v in zip(hashes.SMALL_FIELDS, values, strict=True) if v is not None}
    return JobHash(
        exists=True,
        fields=fields,
        sizes={n: int(s) for n, s in zip(large, sizes, strict=True)},
    )


def _newest(reply: Any) -> tuple[bytes, dict[bytes, bytes]] | None:
    """The newest entry of an XREVRANGE … COUNT 1 reply."""
    if not reply:
        return None
    entry_id, entry = reply[0]
    return bytes(entry_id), dict(entry or {})
