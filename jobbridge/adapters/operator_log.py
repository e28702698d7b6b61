"""What jobbridge itself keeps beside every system's keys, under ``jobbridge_prefix``: the audit
log (one per Redis) and the lifecycle entries of each source (docs/configuration.md). Every
action script takes the same first KEYS and ARGV (lua/_prelude.lua): this module builds them,
parses what the scripts wrote and words the "already handled" refusals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from jobbridge import safejson
from jobbridge.adapters import times
from jobbridge.adapters.fields import (
    MAX_NAME_CHARS,
    cap,
    client_location,
    key_text,
    ms_to_datetime,
    whole_ms,
)
from jobbridge.adapters.redis_errors import MAX_DETAIL_CHARS
from jobbridge.adapters.values import NOT_A_STRING, is_wrongtype, ok
from jobbridge.model import AuditEntry, JobDetail, JobRecord, JobStatus, LifecycleEntry, System

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: How many audit entries jobbridge keeps per Redis.
AUDIT_LIMIT = 10_000
#: How many lifecycle entries jobbridge keeps per source, and for how long per job.
LIFECYCLE_LIMIT = 10_000
LIFECYCLE_TTL_S = 7 * 86_400
#: Largest job record a lifecycle entry keeps a copy of (JB_RECORD_COPY_CAP in lua/_prelude.lua).
RECORD_COPY_CAP = 16_384
#: Largest lifecycle entry read (jobbridge writes at most RECORD_COPY_CAP plus a little).
MAX_LIFECYCLE_BYTES = 64 * 1024

#: (stored record text, job id, lifecycle status) -> the row the copy describes
RecordReader = Callable[[str, str, JobStatus], JobRecord]


@dataclass(frozen=True, slots=True)
class OperatorKeys:
    """jobbridge's keys for one source: ``namespace`` tells sources of one system apart
    (Autumn: its key prefix; RQ: its key prefix)."""

    jobbridge_prefix: str
    system: System
    namespace: str

    @property
    def audit(self) -> str:
        return f"{self.jobbridge_prefix}audit"

    @property
    def lifecycle_list(self) -> str:
        return f"{self.jobbridge_prefix}{self.system}:{self.namespace}:lifecycle"

    def lifecycle(self, job_id: str, entry: str = "") -> str:
        """The lifecycle key of what an action acted on: the job itself (``entry`` "") or one
        kind of entry carrying its id ("waiting": a Celery message; "dead": an Autumn dead
        entry), so that acting on one never blocks or relabels another. ``…:lifecycle:<id>``
        and ``…:lifecycle#<entry>:<id>`` never collide, whatever the id holds."""
        if entry:
            return f"{self.lifecycle_list}#{entry}:{job_id}"
        return f"{self.lifecycle_list}:{job_id}"

    def script_keys(self, job_id: str, entry: str = "") -> list[str]:
        """The KEYS every action script takes first (see lua/_prelude.lua)."""
        return [self.audit, self.lifecycle_list, self.lifecycle(job_id, entry)]


def script_argv(now_ms: int, actor: str, source: str, job_id: str) -> list[str | int]:
    """The ARGV every action script takes first (see lua/_prelude.lua)."""
    return [now_ms, actor, source, LIFECYCLE_TTL_S, LIFECYCLE_LIMIT, AUDIT_LIMIT, job_id]


class OperatorLog:
    """Reads of one source's audit and lifecycle keys."""

    def __init__(
        self, client: Redis, source: str, keys: OperatorKeys, read_record: RecordReader
    ) -> None:
        self.client = client
        self.source = source
        self.keys = keys
        self.read_record = read_record

    @property
    def audit_store(self) -> str:
        """Where the audit list lives (server, database, key): sources sharing one share it."""
        return f"{client_location(self.client)}|{self.keys.audit}"

    async def audit(self, limit: int) -> list[AuditEntry]:
        """The newest audit entries of this source's Redis (all sources in it)."""
        raws = cast("list[bytes]", await self.client.lrange(self.keys.audit, 0, max(0, limit - 1)))
        return [e for e in (parse_audit(r) for r in raws) if e is not None]

    async def lifecycle(self, limit: int) -> list[LifecycleEntry]:
        """The newest operator lifecycle entries of this source."""
        key = self.keys.lifecycle_list
        raws = cast("list[bytes]", await self.client.lrange(key, 0, max(0, limit - 1)))
        return [e for e in (self.parse(r) for r in raws) if e is not None]

    async def entry(self, job_id: str) -> tuple[LifecycleEntry | None, str | None]:
        """A job's lifecycle entry, and why it could not be read (its key holds another
        type: a problem on the job's page, not an unavailable Redis)."""
        (found,), problem = await self.entries(job_id, "")
        return found, problem

    async def entries(
        self, job_id: str, *kinds: str
    ) -> tuple[tuple[LifecycleEntry | None, ...], str | None]:
        """The lifecycle entries of a job, one per kind of entry acted on (``""`` the job
        itself; OperatorKeys.lifecycle), and why any could not be read."""
        pipe = self.client.pipeline(transaction=False)
        self.queue_entries(pipe, job_id, kinds)
        raws = [ok(r) for r in await pipe.execute(raise_on_error=False)]
        return self.take_entries(job_id, kinds, raws)

    def queue_entries(self, pipe: Any, job_id: str, kinds: Sequence[str]) -> None:
        """Add the reads of :meth:`entries` to a pipeline of other reads (one GETRANGE per
        kind); :meth:`take_entries` parses their replies."""
        for kind in kinds:
            pipe.getrange(self.keys.lifecycle(job_id, kind), 0, MAX_LIFECYCLE_BYTES - 1)

    def take_entries(
        self, job_id: str, kinds: Sequence[str], raws: Sequence[object]
    ) -> tuple[tuple[LifecycleEntry | None, ...], str | None]:
        """The entries of :meth:`queue_entries`'s replies (passed through ``values.ok``)."""
        keys = [self.keys.lifecycle(job_id, kind) for kind in kinds]
        problems = [
            f"jobbridge's lifecycle key {key} {NOT_A_STRING}"
            for key, raw in zip(keys, raws, strict=True)
            if is_wrongtype(raw)
        ]
        found = tuple(
            None if is_wrongtype(raw) else self.parse(_raw(raw) or None, job_id) for raw in raws
        )
        return found, "; ".join(problems) or None

    def with_problem(
        self, job_id: str, detail: JobDetail | None, problem: str | None
    ) -> JobDetail | None:
        """A job's page with why its lifecycle entry could not be read: on its row, or a
        flagged row of its own when nothing else names the job."""
        if problem is None:
            return detail
        if detail is None:
            return self.unreadable(job_id, problem)
        return replace(detail, job=times.with_problem(detail.job, problem))

    def unreadable(self, job_id: str, problem: str) -> JobDetail:
        """The page of a job known only by a key that cannot be read: a flagged row."""
        row = JobRecord(
            source=self.source,
            system=self.keys.system,
            id=job_id,
            name="",
            queue="",
            status=JobStatus.UNKNOWN,
            raw_status="unreadable",
            problem=problem,
        )
        return JobDetail(job=row, payload="", payload_kind="not read")

    def parse(self, raw: bytes | str | None, job_id: str | None = None) -> LifecycleEntry | None:
        return parse_lifecycle(raw, self.source, self.keys.system, self.read_record, job_id)

    def already_handled(self, job_id: str, detail: str) -> str | None:
        """The sentence for a refusal whose detail is the job's lifecycle entry, if it is."""
        return already_handled(job_id, self.parse(detail or None, job_id))


def _raw(reply: object) -> bytes | str | None:
    return reply if isinstance(reply, bytes | str) else None


def parse_audit(raw: bytes | str) -> AuditEntry | None:
    """Decode one audit entry written by a Lua script; None if it is not one."""
    try:
        # The script copied the job id's bytes as they were: keep ids that are not UTF-8.
        data: Any = safejson.loads(key_text(raw))
        at = ms_to_datetime(whole_ms(data["at_ms"]))
        if at is None:
            return None
        new_id = data.get("new_id")
        entry = data.get("entry")
        return AuditEntry(
            entry=cap(entry, 40) or "" if isinstance(entry, str) else "",
            at=at,
            actor=_field(data["actor"]),
            source=_field(data["source"]),
            job_id=_field(data["job_id"]),
            action=_field(data["action"]),
            outcome=_field(data["outcome"]),
            new_id=_field(new_id) if new_id else None,
            message=cap(str(data.get("message") or ""), MAX_DETAIL_CHARS) or "",
        )
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError):
        return None


def _field(value: object) -> str:
    """One field of an entry jobbridge wrote, as capped text (anyone can write them)."""
    return (
        cap(value if isinstance(value, str) else json.dumps(value)[:MAX_NAME_CHARS], MAX_NAME_CHARS)
        or ""
    )


def parse_lifecycle(
    raw: bytes | str | None,
    source: str,
    system: System,
    read_record: RecordReader,
    job_id: str | None = None,
) -> LifecycleEntry | None:
    """A lifecycle entry jobbridge wrote; None when it is not one (anyone can write it).

    ``job_id``, when given, is the id the entry was found under: that is its identity.
    """
    if raw is None:
        return None
    try:
        # The script copied the job id's bytes as they were: keep ids that are not UTF-8.
        data: Any = safejson.loads(key_text(raw))
        status = JobStatus(data["status"])
        at = ms_to_datetime(whole_ms(data["at_ms"])) or datetime.fromtimestamp(0, tz=UTC)
        found_id = job_id if job_id is not None else str(data["job_id"])
        stored = data.get("record") or None
        new_id = cap(str(data.get("new_id") or ""), MAX_NAME_CHARS) or None
        actor = cap(str(data.get("actor") or ""), MAX_NAME_CHARS) or ""
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if isinstance(stored, str):
        record = read_record(stored, found_id, status)
        record = replace(record, new_id=new_id, actions=())
    else:
        record = JobRecord(
            source=source,
            system=system,
            id=found_id,
            name="",
            queue="",
            status=status,
            raw_status=status.value,
            new_id=new_id,
            problem=f"no copy of the record was kept (larger than {RECORD_COPY_CAP} bytes)",
        )
    return LifecycleEntry(
        job_id=found_id, status=status, at=at, actor=actor, new_id=new_id, record=record
    )


def already_handled(job_id: str, entry: LifecycleEntry | None) -> str | None:
    """ "Job X was already retried as Y by alice at …": None when there is no entry."""
    if entry is None:
        return None
    when = entry.at.strftime("%Y-%m-%d %H:%M:%SZ")
    by = f" by {entry.actor}" if entry.actor else ""
    if entry.status is JobStatus.RETRIED and entry.new_id:
        return f"Job {job_id} was already retried as {entry.new_id}{by} at {when}."
    return f"Job {job_id} was already {entry.status.value}{by} at {when}."
