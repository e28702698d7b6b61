"""The toy system's adapter: reads its lists, acts through Lua scripts with jobbridge's prelude."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from jobbridge.adapters.fields import key_text, now_ms
from jobbridge.adapters.keyguard import Refusal, refuse, shown, text_problem
from jobbridge.adapters.operator_log import OperatorKeys, OperatorLog
from jobbridge.adapters.outcomes import run_script
from jobbridge.adapters.scripts import bind
from jobbridge.model import (
    Action,
    ActionResult,
    Counters,
    JobDetail,
    JobRecord,
    JobStatus,
    ListName,
    Outcome,
    Page,
    QueueCounters,
    Snapshot,
    SnapshotQuery,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis

#: Entries of one list a read looks at, at the most (the toy bounds every read).
MAX_SCAN = 1000
#: Queue keys discovery looks at, at the most.
MAX_QUEUES = 100


class ToyAdapter:
    """One toy source: ``<prefix>:queue:<name>`` lists and the ``<prefix>:failed`` list."""

    system: ClassVar[str] = "toy"

    def __init__(
        self,
        client: Redis,
        *,
        source: str,
        key_prefix: str,
        queues: Sequence[str] | None,
        jobbridge_prefix: str,
    ) -> None:
        self.client = client
        self.source = source
        self.prefix = key_prefix
        self.configured_queues = tuple(queues or ())
        keys = OperatorKeys(jobbridge_prefix, "toy", key_prefix)
        self.operator = OperatorLog(client, source, keys, self._read_record)
        # The package's lua/*.lua, each after jobbridge's shared prelude.
        self.scripts = bind(client, __name__.rpartition(".")[0])

    # ---------------------------------------------------------------- reads

    @property
    def failed_key(self) -> str:
        return f"{self.prefix}:failed"

    @property
    def running_key(self) -> str:
        return f"{self.prefix}:running"

    def queue_key(self, queue: str) -> str:
        return f"{self.prefix}:queue:{queue}"

    async def queues(self) -> list[str]:
        """The configured queues, else those whose list exists (one bounded SCAN)."""
        if self.configured_queues:
            return list(self.configured_queues)
        found: set[str] = set()
        head = f"{self.prefix}:queue:"
        async for raw in self.client.scan_iter(match=f"{head}*", count=1000, _type="list"):
            found.add(key_text(raw).removeprefix(head))
            if len(found) >= MAX_QUEUES:
                break
        return sorted(found)

    async def _entries(self, key: str) -> list[bytes]:
        raws: list[bytes] = await self.client.lrange(key, 0, MAX_SCAN - 1)
        return raws

    def _row(self, raw: bytes | str, status: JobStatus, queue: str, index: int) -> JobRecord:
        text = key_text(raw)
        try:
            data: Any = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("id"), str):
                raise ValueError("not a job object")
        except ValueError:
            return JobRecord(
                source=self.source,
                system="toy",
                id=f"unreadable-{queue}-{index}",
                name="",
                queue=queue,
                status=JobStatus.UNKNOWN,
                raw_status="unreadable",
                problem="not a toy job (a JSON object with a string id)",
            )
        failed = status is JobStatus.FAILED
        running = status is JobStatus.RUNNING
        actions = {
            JobStatus.FAILED: (Action.RETRY, Action.DISCARD),
            JobStatus.ENQUEUED: (Action.CANCEL,),
        }
        return JobRecord(
            source=self.source,
            system="toy",
            id=data["id"],
            name=str(data.get("name", "")),
            queue=str(data.get("queue", queue)),
            status=status,
            raw_status=status.value,
            enqueued_at=_time(data.get("enqueued_at")),
            started_at=_time(data.get("started_at")) if running else None,
            worker=str(data["worker"]) if running and "worker" in data else None,
            finished_at=_time(data.get("failed_at")) if failed else None,
            last_error=str(data["error"]) if failed and "error" in data else None,
            payload_preview=json.dumps(data.get("args", []))[:200],
            actions=actions.get(status, ()),
            correlation_id=_text(data.get("correlation_id")),
            principal_id=_text(data.get("principal_id")),
        )

    def _read_record(self, stored: str, job_id: str, status: JobStatus) -> JobRecord:
        """The row a lifecycle entry's copy (the job's JSON) describes."""
        row = self._row(stored, status, "", 0)
        return JobRecord(**{**_fields(row), "id": job_id, "raw_status": status.value})

    async def _lists(self) -> tuple[dict[ListName, list[JobRecord]], dict[str, int]]:
        """Every list's rows (bounded), and the length of each queue."""
        enqueued: list[JobRecord] = []
        sizes: dict[str, int] = {}
        for queue in await self.queues():
            raws = await self._entries(self.queue_key(queue))
            sizes[queue] = int(await self.client.llen(self.queue_key(queue)))
            # Oldest first: new jobs are pushed on the left.
            for index, raw in enumerate(reversed(raws)):
                enqueued.append(self._row(raw, JobStatus.ENQUEUED, queue, index))
        rows = {ListName.ENQUEUED: enqueued}
        for name, key, status in self._others:
            raws = await self._entries(key)
            rows[name] = [self._row(raw, status, "", i) for i, raw in enumerate(raws)]
        return rows, sizes

    @property
    def _others(self) -> tuple[tuple[ListName, str, JobStatus], ...]:
        return (
            (ListName.RUNNING, self.running_key, JobStatus.RUNNING),
            (ListName.FAILED, self.failed_key, JobStatus.FAILED),
        )

    async def counters(self) -> Counters:
        rows, sizes = await self._lists()
        return self._counters(rows, sizes)

    def _counters(self, rows: dict[ListName, list[JobRecord]], sizes: dict[str, int]) -> Counters:
        return Counters(
            enqueued=sum(sizes.values()),
            scheduled=0,
            running=len(rows[ListName.RUNNING]),
            completed_24h=None,
            failed_7d=None,
            queues=tuple(QueueCounters(name=q, enqueued=n) for q, n in sizes.items()),
            completed_kept=0,
            failed_kept=len(rows[ListName.FAILED]),
        )

    async def snapshot(self, query: SnapshotQuery) -> Snapshot:
        rows, sizes = await self._lists()
        lists = {
            name: _page(rows.get(name, []), query, name)
            for name in ListName
            if name is not ListName.CANCELED
        }
        return Snapshot(
            source=self.source,
            system="toy",
            taken_at=datetime.now(UTC),
            counters=self._counters(rows, sizes),
            lists=lists,
        )

    async def job(self, job_id: str) -> JobDetail | None:
        found = await self._find(job_id)
        lifecycle, _ = await self.operator.entry(job_id)
        if found is not None:
            row, raw, _key = found
            return JobDetail(
                job=row,
                payload=row.payload_preview,
                payload_kind="json",
                lifecycle=(lifecycle,) if lifecycle else (),
                raw=key_text(raw)[:4000],
            )
        if lifecycle is not None and lifecycle.record is not None:
            return JobDetail(
                job=lifecycle.record,
                payload="",
                payload_kind="lifecycle copy",
                lifecycle=(lifecycle,),
            )
        return None

    async def _find(self, job_id: str) -> tuple[JobRecord, bytes, str] | None:
        """The job's row, its entry exactly as stored, and the list holding it."""
        places = [(key, status, "") for _, key, status in self._others]
        places += [(self.queue_key(q), JobStatus.ENQUEUED, q) for q in await self.queues()]
        for key, status, queue in places:
            for raw in await self._entries(key):
                row = self._row(raw, status, queue, 0)
                if row.id == job_id and row.problem is None:
                    return row, raw, key
        return None

    # ---------------------------------------------------------------- actions

    async def _failed(self, job_id: str) -> tuple[JobRecord, bytes, str] | None:
        """The job in the failed list: retry and discard look nowhere else, so a job that
        waits or runs is not found there (the outcome every system gives)."""
        found = await self._find(job_id)
        return found if found is not None and found[2] == self.failed_key else None

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        found = await self._failed(job_id)
        entry, queue = b"", "default"
        if found is not None:
            entry, queue = found[1], found[0].queue
            # The queue names the key the script writes: a forged one must not choose it.
            problem = text_problem(queue)
            if problem is not None:
                refusal = Refusal(
                    Outcome.CORRUPT,
                    f"The stored queue {shown(queue)} cannot name a queue ({problem}): "
                    "nothing was changed.",
                )
                return await refuse(
                    self.scripts, self.operator, Action.RETRY, job_id, actor, refusal
                )
        new_id = uuid.uuid4().hex
        job = json.loads(entry) if entry else {}
        job.update(id=new_id, enqueued_at=now_ms() / 1000)
        job.pop("error", None)
        job.pop("failed_at", None)
        return await self._run(
            Action.RETRY,
            job_id,
            actor,
            [self.failed_key, self.queue_key(queue)],
            [entry, json.dumps(job), new_id],
        )

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        found = await self._failed(job_id)
        entry = found[1] if found is not None else b""
        return await self._run(
            Action.DISCARD, job_id, actor, [self.failed_key], [entry, "discard"], "remove"
        )

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        found = await self._find(job_id)
        if found is not None and found[0].status is not JobStatus.ENQUEUED:
            why = f"is {found[0].status.value}; only waiting jobs can be canceled"
            return await self._refuse(Action.CANCEL, job_id, actor, why)
        key, entry = (found[2], found[1]) if found is not None else (self.failed_key, b"")
        return await self._run(Action.CANCEL, job_id, actor, [key], [entry, "cancel"], "remove")

    async def _refuse(self, action: Action, job_id: str, actor: str, why: str) -> ActionResult:
        """A refusal Python decides (the job is in the other list), audited like the rest."""
        refusal = Refusal(Outcome.WRONG_STATE, f"Job {job_id} {why}; nothing was changed.")
        return await refuse(self.scripts, self.operator, action, job_id, actor, refusal)

    async def _run(
        self,
        action: Action,
        job_id: str,
        actor: str,
        keys: list[str],
        args: list[str | int | bytes],
        script: str | None = None,
    ) -> ActionResult:
        result = await run_script(
            self.scripts[script or action.value],
            action=action,
            job_id=job_id,
            actor=actor,
            keys=keys,
            args=args,
            operator=self.operator,
        )
        assert result is not None, "the toy's scripts never answer 'changed'"
        return result

    async def close(self) -> None:
        await self.client.aclose()


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None


def _time(value: object) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 2**33:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def _fields(row: JobRecord) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__dataclass_fields__}


def _page(rows: list[JobRecord], query: SnapshotQuery, name: ListName) -> Page:
    start = query.offset(name)
    size = query.size(name)
    items = rows[start : start + query.rows(name)]
    return Page(items=tuple(items), total=len(rows), page=query.page(name), per_page=size)
