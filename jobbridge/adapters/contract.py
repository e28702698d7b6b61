"""The adapter contract: what every adapter answers, and the protocols an adapter opts into."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from jobbridge.model import (
    ActionResult,
    Counters,
    JobDetail,
    Snapshot,
    SnapshotQuery,
    System,
    Worker,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.finished import FinishedBatch
    from jobbridge.adapters.operator_log import OperatorLog


class JobAdapter(Protocol):
    """What the service needs from each system. Async throughout.

    Adapters let Redis errors propagate; the service turns them into ``SourceUnavailable``
    (and reads once more after a dropped connection) in one place. What only some systems do
    is an opt-in protocol below, checked with ``isinstance``.
    """

    system: ClassVar[System]
    #: the configured source name
    source: str
    #: the source's Redis client (``decode_responses=False``)
    client: Redis
    #: jobbridge's audit and lifecycle keys for this source
    operator: OperatorLog

    async def snapshot(self, query: SnapshotQuery) -> Snapshot:
        """Read the counters and one page of each list."""
        ...

    async def counters(self) -> Counters:
        """Read the headline counters only."""
        ...

    async def job(self, job_id: str) -> JobDetail | None:
        """Find one job wherever it is, or its lifecycle entry; None when unknown."""
        ...

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        """Re-enqueue a terminally failed job under a new id."""
        ...

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        """Remove a terminally failed job from the failed list."""
        ...

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        """Remove a job no worker has taken yet."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class DiscoversQueues(Protocol):
    """A system whose queues are found by looking at keys (bounded steps, in the background)."""

    async def refresh_queues(self) -> None:
        """One bounded step of queue discovery; called in the background, never per request."""
        ...

    async def discover_queues(self, max_steps: int = 10_000) -> None:
        """Steps until one full pass completes (the CLI, before a one-shot read)."""
        ...


@runtime_checkable
class ListsWorkers(Protocol):
    """A system that registers its workers in Redis."""

    async def workers(self) -> tuple[Worker, ...]:
        """Every registered worker, bounded (see the adapter for its cap)."""
        ...


@runtime_checkable
class StopsJobs(Protocol):
    """A system whose running jobs can be asked to stop."""

    async def stop(self, job_id: str, actor: str) -> ActionResult:
        """Ask the worker running the job to stop it; report that the request was sent."""
        ...


@runtime_checkable
class RevokesTasks(Protocol):
    """A system whose workers can be told to discard a task they hold (Celery's revoke)."""

    async def revoke(self, job_id: str, actor: str) -> ActionResult:
        """Broadcast the revoke; report that the request was sent."""
        ...


@runtime_checkable
class NamesEntries(Protocol):
    """A system where one id can stand for several entries (two Celery messages carrying one
    task id): its rows name their entry (``JobRecord.entry``), and a page or a cancel that
    names an entry reaches that one only."""

    async def job_entry(self, job_id: str, entry: str) -> JobDetail | None:
        """The job page of exactly this entry; None when no entry of the id is it."""
        ...

    async def cancel_entry(self, job_id: str, entry: str, actor: str) -> ActionResult:
        """Cancel exactly this entry (one waiting message), whatever others share its id."""
        ...


@runtime_checkable
class RunsInBackground(Protocol):
    """A system whose adapter follows Redis in the background (subscriptions, an index it
    keeps): started by the web app's service, never by one-shot CLI reads."""

    async def start(self) -> None:
        """Start the background work (idempotent); ``close`` stops it."""
        ...


@runtime_checkable
class FollowsFinished(Protocol):
    """A system whose finished jobs can be followed by their stored finish times, for the
    chart series (jobbridge.series); read in the background, never per request."""

    async def finished_since(self, cursor: str | None, *, limit: int) -> FinishedBatch:
        """The jobs that finished after ``cursor`` (None: everything the system still keeps
        from the last 24 h), at most ``limit``, and the cursor to read on from."""
        ...
