"""RQ's worker hashes and cron schedulers as the shared model's workers and schedules.

Pure functions, no Redis; every field is hostile input (docs/rq.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from jobbridge import safejson
from jobbridge.adapters.fields import (
    MAX_NAME_CHARS,
    cap,
    key_text,
)
from jobbridge.adapters.rq.hashes import (
    Fields,
    JobHash,
    parse_timestamp,
    shown_bad,
)
from jobbridge.adapters.rq.records import split_wip_member
from jobbridge.model import (
    Schedule,
    Worker,
)

# ------------------------------------------------------------------------------------------
# Workers

#: fields of a worker hash read (rq/worker/base.py)
WORKER_FIELDS = (
    "state",
    "queues",
    "current_job",
    "birth",
    "last_heartbeat",
    "successful_job_count",
    "failed_job_count",
    "hostname",
    "pid",
    "death",
    "total_working_time",
)
#: the longest working time read as one (a century, seconds); longer is not RQ's
MAX_WORKING_TIME_S = 100 * 365 * 86_400.0


def to_worker(
    name: str,
    values: Iterable[bytes | None],
    execution_member: bytes | None = None,
) -> Worker:
    """One worker's hash (HMGET of :data:`WORKER_FIELDS`) as a Worker.

    A worker whose hash expired (still listed: it died without unregistering) or that
    recorded its ``death`` is "dead". RQ 3 keeps no ``current_job`` field; its current
    job is a member of the worker's executions set (``execution_member``).
    """
    raw = dict(zip(WORKER_FIELDS, values, strict=True))
    shown_name = cap(name, MAX_NAME_CHARS) or ""
    if all(v is None for v in raw.values()):
        return Worker(name=shown_name, state="dead", problem="its worker hash no longer exists")
    fields = Fields(JobHash(exists=True, fields={k: v for k, v in raw.items() if v is not None}))
    state = fields.text("state") or "?"
    if fields.raw("death") is not None:
        state = "dead"
    current = fields.text("current_job")
    if current is None and execution_member:
        current = cap(split_wip_member(key_text(execution_member))[0], MAX_NAME_CHARS)
    queues = tuple(
        cap(q, MAX_NAME_CHARS) or "" for q in (fields.text("queues", 10_000) or "").split(",") if q
    )[:100]
    last_heartbeat = fields.time("last_heartbeat")
    return Worker(
        name=shown_name,
        state=state,
        queues=queues,
        current_job=current,
        current_jobs=(current,) if current else (),
        birth=fields.time("birth"),
        last_heartbeat=last_heartbeat,
        last_seen=last_heartbeat,
        working_time_s=_seconds(fields, "total_working_time"),
        successful=_tally(fields, "successful_job_count"),
        failed=_tally(fields, "failed_job_count"),
        hostname=fields.text("hostname"),
        pid=_count(fields, "pid"),
        problem="; ".join(fields.problems) if fields.problems else None,
    )


def _count(fields: Fields, name: str) -> int | None:
    value = fields.int(name)
    if value is not None and value < 0:
        fields.problems.append(f"{name} is negative")
        return None
    return value


def _tally(fields: Fields, name: str) -> int | None:
    """A count RQ increments (``HINCRBY``): absent from a live hash is 0, as RQ reads it
    (the field is made by the first job that counts)."""
    return 0 if fields.raw(name) is None else _count(fields, name)


def _seconds(fields: Fields, name: str) -> float | None:
    """A float field RQ increments (``HINCRBYFLOAT``), seconds; absent is 0, as RQ reads it."""
    raw = fields.raw(name)
    if raw is None:
        return 0.0
    try:
        value = float(raw[:64].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        value = math.nan
    if not 0 <= value <= MAX_WORKING_TIME_S:  # NaN too
        fields.problems.append(f"{name} is not a number of seconds ({shown_bad(raw)})")
        return None
    return value


# ------------------------------------------------------------------------------------------
# Cron


def cron_schedules(raw: bytes, limit: int) -> tuple[list[Schedule], str | None]:
    """The cron jobs one cron scheduler's hash lists (its ``cron_jobs`` JSON), at most
    ``limit``; and a problem in words when the field is not what RQ writes."""
    try:
        loaded = safejson.loads(raw)
    except safejson.JSONError as exc:
        return [], f"its cron_jobs field is not JSON ({cap(str(exc), 80)})"
    if not isinstance(loaded, list):
        return [], "its cron_jobs field is not a JSON list"
    out = []
    bad = 0
    for item in loaded[:limit]:
        schedule = _cron_schedule(item)
        if schedule is None:
            bad += 1
        else:
            out.append(schedule)
    return out, f"{bad} of its cron jobs could not be read" if bad else None


def _cron_schedule(item: object) -> Schedule | None:
    if not isinstance(item, dict):
        return None
    name = item.get("name") or item.get("func_name")
    if not isinstance(name, str) or not name:
        return None
    cron, interval, queue = item.get("cron"), item.get("interval"), item.get("queue_name")
    if isinstance(cron, str) and cron:
        every = f"cron {cap(cron, MAX_NAME_CHARS)}"
    elif isinstance(interval, int) and not isinstance(interval, bool) and interval > 0:
        every = f"every {interval}s"
    else:
        return None
    if isinstance(queue, str) and queue:
        every += f" on queue {cap(queue, MAX_NAME_CHARS)}"
    next_run = None
    if isinstance(item.get("next_enqueue_time"), str):
        try:
            next_run = parse_timestamp(item["next_enqueue_time"])
        except (ValueError, UnicodeEncodeError):
            next_run = None
    return Schedule(name=cap(name, MAX_NAME_CHARS) or "", schedule=every, next_run_at=next_run)
