"""The shared snapshot model every adapter maps its system onto.

Statuses use Autumn's vocabulary; each record keeps its system's own word in ``raw_status``
so nothing upstream is lost. All timestamps are aware UTC datetimes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

#: A system's name, as its entry in the registry of systems (jobbridge.adapters) gives it.
System = str

#: ``per_page`` bounds, as Autumn's admin clamps them.
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100

#: Longest job id jobbridge links to and acts on, on every route (page, API, CLI): a row whose
#: id is longer says so and offers no action. Real ids are far shorter (UUIDs: 36).
MAX_JOB_ID_CHARS = 200
#: Longest entry name (``JobRecord.entry``) a route accepts.
MAX_ENTRY_CHARS = 100


def reachable_id(job_id: str) -> bool:
    """Whether every route (page, API, CLI) can name this id."""
    return 0 < len(job_id) <= MAX_JOB_ID_CHARS


#: Windows of the completed and failed lists.
COMPLETED_WINDOW = timedelta(hours=24)
FAILED_WINDOW = timedelta(days=7)


class JobStatus(enum.StrEnum):
    """Where a job is in its life, in Autumn's words."""

    #: waiting for a worker
    ENQUEUED = "enqueued"
    #: due later (first attempt)
    SCHEDULED = "scheduled"
    #: failed with attempts left, waiting for its backoff
    RETRYING = "retrying"
    #: executing, or reserved by a worker
    RUNNING = "running"
    #: succeeded
    COMPLETED = "completed"
    #: terminally failed
    FAILED = "failed"
    #: removed by an operator before any worker took it
    CANCELED = "canceled"
    #: a failed job an operator re-enqueued under a new id
    RETRIED = "retried"
    #: a failed job an operator removed from the failed list
    DISCARDED = "discarded"
    #: parked because its concurrency group is full
    BLOCKED = "blocked"
    #: the record could not be read; see ``JobRecord.problem``
    UNKNOWN = "unknown"


#: Statuses of a job waiting for its (next) run.
WAITING = frozenset(
    {JobStatus.ENQUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING, JobStatus.BLOCKED}
)

#: Statuses of operator lifecycle entries (kept by jobbridge, not by the system).
LIFECYCLE_STATUSES = frozenset({JobStatus.CANCELED, JobStatus.RETRIED, JobStatus.DISCARDED})


class ListName(enum.StrEnum):
    """The lists of a source's dashboard, in display order."""

    ENQUEUED = "enqueued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    #: jobs the system itself keeps as canceled (RQ's canceled registries); a source whose
    #: system keeps none (Autumn deletes a canceled job) leaves it out of its snapshots
    CANCELED = "canceled"


#: the lists every source has
CORE_LISTS = frozenset(
    {ListName.ENQUEUED, ListName.SCHEDULED, ListName.RUNNING, ListName.COMPLETED, ListName.FAILED}
)


class Action(enum.StrEnum):
    """Operator actions on a single job."""

    CANCEL = "cancel"
    RETRY = "retry"
    DISCARD = "discard"
    #: ask the worker running a job to stop it (RQ's stop-job command): a request, not a
    #: state change jobbridge makes itself
    STOP = "stop"
    #: ask every worker to discard a task it holds or will receive (Celery's revoke
    #: broadcast): a request, which only workers online now hear
    REVOKE = "revoke"


class Outcome(enum.StrEnum):
    """What an action did. Mirrors the integer codes the Lua scripts return."""

    #: the action happened
    DONE = "done"
    #: no such job
    NOT_FOUND = "not_found"
    #: the job is not in a state the action applies to (e.g. already running)
    WRONG_STATE = "wrong_state"
    #: something else stands in the way (e.g. an equivalent unique job is pending)
    CONFLICT = "conflict"
    #: the stored record is unreadable
    CORRUPT = "corrupt"
    #: the source's Redis could not be reached; nothing is known to have changed
    UNAVAILABLE = "unavailable"
    #: the action was refused before reaching Redis (read-only mode)
    FORBIDDEN = "forbidden"


#: The past-tense word an action reports when it succeeds.
DONE_WORDS: Mapping[Action, str] = {
    Action.CANCEL: "canceled",
    Action.RETRY: "retried",
    Action.DISCARD: "discarded",
    Action.STOP: "stop_requested",
    Action.REVOKE: "revoke_requested",
}


def clamp_per_page(value: int | None) -> int:
    """Clamp a requested page size to 1..100, defaulting to 25."""
    if value is None:
        return DEFAULT_PER_PAGE
    return max(1, min(MAX_PER_PAGE, value))


def clamp_page(value: int | None) -> int:
    """Pages are numbered from 1; anything lower (or missing) means the first."""
    if value is None:
        return 1
    # A page past any plausible end would make LRANGE offsets absurd; cap it.
    return max(1, min(value, 10_000_000))


def api(
    description: str = "",
    *,
    name: str | None = None,
    omit: bool = False,
    inline: bool = False,
    values: Iterable[enum.StrEnum] | None = None,
    systems: bool = False,
) -> dict[str, Any]:
    """A field's ``metadata`` for its JSON encoding (serialize.py) and its OpenAPI schema.

    ``name``: its JSON key, when not the field's; ``omit``: left out of the JSON; ``inline``:
    a nested record whose keys go into this object's; ``values``: the members of its enum it
    can hold; ``systems``: it names a system (the document's enum lists the known ones).
    """
    meta: dict[str, Any] = {"description": description} if description else {}
    if name is not None:
        meta["name"] = name
    if omit:
        meta["omit"] = True
    if inline:
        meta["inline"] = True
    if values is not None:
        chosen = frozenset(values)
        # in the enum's own order, whatever the set's
        members = list(type(next(iter(chosen)))) if chosen else []
        meta["values"] = tuple(m.value for m in members if m in chosen)
    if systems:
        meta["systems"] = True
    return meta


def check_aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """One job, as every source maps it."""

    source: str = field(metadata=api("name of the configured source the job came from"))
    system: System = field(metadata=api("which system stores it", systems=True))
    id: str = field(metadata=api("the system's job id"))
    name: str = field(metadata=api('registered job / task name ("" when unreadable)'))
    queue: str = field(metadata=api("queue name"))
    status: JobStatus = field(metadata=api("shared status, in Autumn's words"))
    raw_status: str = field(
        metadata=api("the system's own word for the state (e.g. Autumn's list name)")
    )
    enqueued_at: datetime | None = None
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt: int | None = field(
        default=None,
        metadata=api(
            "the attempt the job is on, from 1 (Autumn's attempt; Celery's retries + 1; RQ: "
            "the runs of a job that returned Retry); null where the system does not count"
        ),
    )
    max_attempts: int | None = field(
        default=None,
        metadata=api("the most attempts it may make, where the system stores it (Autumn)"),
    )
    last_error: str | None = None
    principal_id: str | None = None
    correlation_id: str | None = None
    worker: str | None = field(
        default=None, metadata=api("worker that holds the job, when running")
    )
    payload_preview: str = field(
        default="", metadata=api("short, safe, size-capped text preview of the payload")
    )
    actions: tuple[Action, ...] = field(
        default=(), metadata=api("the actions that apply to this job in its present state")
    )
    problem: str | None = field(
        default=None,
        metadata=api("why the stored record could not be fully read (null when it was fine)"),
    )
    new_id: str | None = field(
        default=None, metadata=api("lifecycle rows: the id of the job a retry created")
    )
    extra: Mapping[str, str] = field(
        default_factory=dict,
        metadata=api("system-specific extras worth showing (unique key, concurrency group, ...)"),
    )
    overdue_since: datetime | None = field(
        default=None,
        metadata=api(
            "running jobs: when the claim's deadline passed (null while within it); its "
            "worker is likely gone and the job waits for the system's own recovery, which "
            "needs a live worker"
        ),
    )
    #: links and actions name it, so they reach this entry only
    entry: str | None = field(
        default=None,
        metadata=api(
            "which of the job's entries this row is, when one id can stand for several (two "
            "Celery messages carrying one task id): pass it as `?entry=` to reach that one; "
            "null when the id alone names it"
        ),
    )

    retries_left: int | None = field(
        default=None,
        metadata=api(
            "retries the job has left under its system's retry policy, where the system counts "
            "them down (RQ's Retry: retries_left); null where it does not"
        ),
    )
    retries_max: int | None = field(
        default=None,
        metadata=api(
            "the retry policy's maximum, where it can be known (RQ stores only retries_left: "
            "its maximum is known while the job has not run yet); null otherwise"
        ),
    )
    waits_for: tuple[str, ...] = field(
        default=(),
        metadata=api(
            "ids of the jobs this one waits for before it can run (RQ's dependencies of a "
            "deferred job, at most 10 shown); empty when it waits for none"
        ),
    )

    def __post_init__(self) -> None:
        for name in ("enqueued_at", "scheduled_for", "started_at", "finished_at", "overdue_since"):
            check_aware(getattr(self, name), name)

    @property
    def sort_time(self) -> datetime | None:
        """finished ?? started ?? enqueued: the time Autumn sorts histories by."""
        return self.finished_at or self.started_at or self.enqueued_at

    def runtime(self, now: datetime) -> timedelta | None:
        """How long it ran: finished - started, or ``now`` - started while it runs; None
        where the system recorded neither (or the times go backwards), and for a job waiting
        for its next run (its times are the previous run's)."""
        if self.started_at is None or self.status in WAITING:
            return None
        end = self.finished_at
        if end is None and self.status is JobStatus.RUNNING:
            end = now
        if end is None or end < self.started_at:
            return None
        return end - self.started_at

    @property
    def wait(self) -> timedelta | None:
        """How long it waited for a worker: started - (scheduled_for, else enqueued_at), for
        a job that has started its current run; None where a time is missing."""
        if self.started_at is None or self.status in WAITING:
            return None
        since = self.scheduled_for or self.enqueued_at
        if since is None or self.started_at < since:
            return None
        return self.started_at - since

    @property
    def attempts_text(self) -> str:
        """Its attempts in words, "" where the system records none: "2/5" (attempt of
        max_attempts), "attempt 3" (no maximum), "2 retries left", "3 retries left of 3"
        (a count-down retry policy, with its maximum where known)."""
        if self.retries_left is not None:
            left = self.retries_left
            plural = "retry" if left == 1 else "retries"
            words = "no retries left" if left == 0 else f"{left} {plural} left"
            if self.retries_max is not None:
                words += f" of {self.retries_max}"
            return words if self.attempt is None else f"attempt {self.attempt}, {words}"
        if self.attempt is None:
            return "" if self.max_attempts is None else f"max {self.max_attempts}"
        if self.max_attempts is None:
            return f"attempt {self.attempt}"
        return f"{self.attempt}/{self.max_attempts}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page of one list."""

    items: tuple[JobRecord, ...]
    total: int = field(metadata=api("number of entries in the whole list (within its window)"))
    page: int
    per_page: int
    skipped: int = field(
        default=0,
        metadata=api(
            "entries on this page that were dropped as unreadable (shown as flagged rows "
            "instead when there is anything to show)",
            name="flagged",
        ),
    )

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


#: what ``oldest_enqueued_age_at_least`` means, in the API's words
AT_LEAST = (
    "true when oldest_enqueued_age_s is only a lower bound: the system stores no enqueue "
    'time, so the age counts from when jobbridge first saw the job (show it as "at least")'
)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCounters:
    name: str
    enqueued: int
    oldest_enqueued_age_s: float | None = field(
        default=None,
        metadata=api(
            "age of the oldest waiting job of this queue, seconds (null when empty or unknown)"
        ),
    )
    oldest_enqueued_age_at_least: bool = field(
        default=False,
        metadata=api(AT_LEAST),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Counters:
    """The dashboard's headline numbers for one source."""

    enqueued: int
    scheduled: int
    running: int
    completed_24h: int | None = field(
        metadata=api(
            "jobs completed in the last 24 h, where the system's keys let them be counted "
            "exactly in bounded work; null where they cannot (RQ scores its registries by "
            "expiry, not by end time): see completed_kept"
        )
    )
    failed_7d: int | None = field(
        metadata=api("jobs failed in the last 7 days; null as completed_24h: see failed_kept")
    )
    oldest_enqueued_age_s: float | None = field(
        default=None,
        metadata=api("age of the oldest waiting job across queues, seconds: the queue latency"),
    )
    oldest_enqueued_age_at_least: bool = field(
        default=False,
        metadata=api(AT_LEAST + " (true when any queue's is)"),
    )
    blocked: int = field(
        default=0,
        metadata=api(
            "jobs that cannot run yet whatever the time: parked by a full concurrency group "
            "(Autumn; not part of any list) or waiting on the jobs they depend on (RQ's "
            "deferred jobs, listed with the scheduled ones)"
        ),
    )
    running_overdue: int = field(
        default=0,
        metadata=api(
            "running jobs past their claim's deadline (see the job's overdue_since): stuck "
            "until a worker recovers them"
        ),
    )
    completed_kept: int | None = field(
        default=None,
        metadata=api(
            "completed entries the system still keeps, whatever their age (null when unknown)"
        ),
    )
    failed_kept: int | None = field(
        default=None,
        metadata=api(
            "failed entries the system still keeps, whatever their age (null when unknown)"
        ),
    )
    #: Autumn deletes a canceled job: jobbridge's lifecycle entries remember it
    canceled: int | None = field(
        default=None,
        metadata=api(
            "jobs the system itself keeps as canceled (RQ's canceled registries); null where "
            "it keeps none"
        ),
    )
    problems: tuple[str, ...] = field(
        default=(),
        metadata=api(
            "what could not be read, in words (a key of the wrong type, queues left out): the "
            "counts above leave those parts out"
        ),
    )
    queues: tuple[QueueCounters, ...] = ()


def list_title(name: ListName, counters: Counters) -> str:
    """A list's heading: the completed and failed lists name their window where the system
    has one, and say "as kept" where it only keeps entries until they expire (RQ)."""
    if name is ListName.COMPLETED:
        windowed = counters.completed_24h is not None
        return "Completed (last 24h)" if windowed else "Completed (as the system keeps them)"
    if name is ListName.FAILED:
        windowed = counters.failed_7d is not None
        return "Failed (last 7d)" if windowed else "Failed (as the system keeps them)"
    return name.value.capitalize()


@dataclass(frozen=True, slots=True, kw_only=True)
class Worker:
    """One worker process, as the system registers it."""

    name: str
    state: str = field(
        metadata=api(
            'the system\'s word: idle, busy, suspended, started; "dead" when its record expired '
            "or it recorded its death but is still listed"
        )
    )
    queues: tuple[str, ...] = ()
    current_job: str | None = None
    birth: datetime | None = None
    last_heartbeat: datetime | None = None
    successful: int | None = None
    failed: int | None = None
    hostname: str | None = None
    pid: int | None = None
    problem: str | None = field(
        default=None, metadata=api("why the worker's record could not be fully read")
    )
    pool: str | None = field(
        default=None, metadata=api("the worker's pool (Celery: prefork, solo, threads, ...)")
    )
    concurrency: int | None = field(default=None, metadata=api("the pool's process / thread count"))
    active: int | None = field(default=None, metadata=api("tasks it is executing"))
    reserved: int | None = field(
        default=None,
        metadata=api(
            "tasks it holds prefetched, waiting for a free slot of its pool (Celery: the "
            "length of inspect's reserved answer; tasks held for an eta are in scheduled)"
        ),
    )
    scheduled: int | None = field(
        default=None,
        metadata=api(
            "tasks it holds for their eta or countdown (Celery: the length of inspect's "
            "scheduled answer)"
        ),
    )
    current_jobs: tuple[str, ...] = field(
        default=(),
        metadata=api(
            "every job it is running now; current_job is the first (Celery: the ids of "
            "inspect's active answer, kept up to date by task events; RQ: current_job)"
        ),
    )
    processed: int | None = field(
        default=None,
        metadata=api(
            "jobs it has started since it started, whatever their outcome (Celery: stats' "
            "total summed over task names, which its heartbeats' processed repeats)"
        ),
    )
    failed_since: datetime | None = field(
        default=None,
        metadata=api(
            "failed counts from this time on, not from birth (Celery: task-failed events "
            "this jobbridge process has heard since it began following); null: since birth"
        ),
    )
    working_time_s: float | None = field(
        default=None,
        metadata=api("seconds it has spent running jobs (RQ: total_working_time)"),
    )
    last_seen: datetime | None = field(
        default=None,
        metadata=api(
            "when it last proved alive: its last heartbeat, or (Celery) its last answer to "
            "an inspection, whichever is later; the page shows its age"
        ),
    )

    def __post_init__(self) -> None:
        check_aware(self.birth, "birth")
        check_aware(self.last_heartbeat, "last_heartbeat")
        check_aware(self.failed_since, "failed_since")
        check_aware(self.last_seen, "last_seen")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A recurring task, where the system stores one."""

    name: str
    schedule: str
    next_run_at: datetime | None = None
    last_status: str | None = None


#: The completed and failed lists, which the systems bound themselves (Autumn: 1,000 entries).
HISTORY_LISTS = frozenset({ListName.COMPLETED, ListName.FAILED})
#: Largest page of a history list an internal reader may ask for.
MAX_HISTORY_PER_PAGE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotQuery:
    """Which page of each list to read."""

    pages: Mapping[ListName, int] = field(default_factory=dict)
    per_page: int = DEFAULT_PER_PAGE
    #: page size of the completed and failed lists when it differs from ``per_page``: lets
    #: internal readers (the actuator) take a whole bounded history in one read
    history_per_page: int | None = None
    #: the lists whose page to read (all when None); the others come back empty, with their
    #: totals (the overview reads only the failed list)
    only: frozenset[ListName] | None = None

    @classmethod
    def build(
        cls,
        pages: Mapping[ListName, int | None] | None = None,
        per_page: int | None = None,
        *,
        history_per_page: int | None = None,
        only: frozenset[ListName] | None = None,
    ) -> SnapshotQuery:
        """Clamp the inputs: pages >= 1, per_page in 1..100, history_per_page in 1..1000."""
        clamped = {name: clamp_page((pages or {}).get(name)) for name in ListName}
        history = None
        if history_per_page is not None:
            history = max(1, min(MAX_HISTORY_PER_PAGE, history_per_page))
        return cls(
            pages=clamped, per_page=clamp_per_page(per_page), history_per_page=history, only=only
        )

    def wants(self, name: ListName) -> bool:
        """Whether this list's page is to be read."""
        return self.only is None or name in self.only

    def page(self, name: ListName) -> int:
        return clamp_page(self.pages.get(name))

    def size(self, name: ListName) -> int:
        """Rows per page of this list."""
        if self.history_per_page is not None and name in HISTORY_LISTS:
            return self.history_per_page
        return self.per_page

    def offset(self, name: ListName) -> int:
        return (self.page(name) - 1) * self.size(name)

    def rows(self, name: ListName) -> int:
        """Rows of this list to read: its page size, or 0 when it is not wanted."""
        return self.size(name) if self.wants(name) else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything one source's dashboard shows."""

    source: str
    system: System = field(metadata=api(systems=True))
    taken_at: datetime
    counters: Counters
    lists: Mapping[ListName, Page] = field(
        metadata=api("one page of each list (the lists the system has)")
    )
    schedules: tuple[Schedule, ...] = ()
    history_limit: int | None = field(
        default=None,
        metadata=api("how many entries the system keeps in its completed / failed histories"),
    )
    workers: tuple[Worker, ...] | None = field(
        default=None,
        metadata=api("the system's workers, where it registers them (null: it keeps no such list)"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionResult:
    """What one action did, to report to the operator exactly."""

    action: Action
    outcome: Outcome
    job_id: str
    #: the job a retry created
    new_id: str | None = None
    #: a human sentence: "Retried job X as Y.", "Job X is already running."
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DONE


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleEntry:
    """An operator lifecycle row jobbridge keeps for a job it canceled, retried or discarded."""

    job_id: str
    status: JobStatus = field(metadata=api(values=LIFECYCLE_STATUSES))
    at: datetime
    actor: str
    new_id: str | None = field(default=None, metadata=api("the job a retry created"))
    #: the job as it was when the action took it (may be None for old or trimmed entries)
    record: JobRecord | None = field(default=None, metadata=api(omit=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One operator action, whatever its outcome."""

    at: datetime
    actor: str
    source: str
    job_id: str
    action: str
    outcome: str
    new_id: str | None = None
    message: str = ""
    entry: str = field(
        default="",
        metadata=api(
            'what was acted on besides the id: "" the job itself, "waiting" a waiting message '
            'of a Celery task, "dead" an Autumn dead entry'
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDetail:
    """A job with everything the detail page shows."""

    job: JobRecord = field(metadata=api(inline=True))
    payload: str = field(
        metadata=api("the safely decoded payload (text, never an executed unpickle), size-capped")
    )
    payload_kind: str = field(
        metadata=api('what the payload is ("json", "json (truncated)", "empty", ...)')
    )
    lifecycle: tuple[LifecycleEntry, ...] = ()
    #: the stored record as text, size-capped (pages only)
    raw: str = field(default="", metadata=api(omit=True))
