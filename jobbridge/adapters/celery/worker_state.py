"""What is known of one Celery worker, and when it counts as online (Celery's rule for
heartbeats; answers to inspections for a worker that sends none), read from hostile events
and answers: names and values are capped, wrong types read as unknown."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from jobbridge.adapters import times
from jobbridge.adapters.fields import MAX_NAME_CHARS, cap
from jobbridge.model import Worker

#: Celery's heartbeat interval when an event does not say (``worker_heartbeat`` 2 s)
DEFAULT_FREQ = 2.0
#: the interval read from an event is kept within these bounds
MIN_FREQ, MAX_FREQ = 0.1, 3600.0
#: a worker is online while its last heartbeat is younger than ``freq`` times this
#: (celery/events/state.py: an expire window of 200 %)
EXPIRE_FACTOR = 2.0
#: offline workers are forgotten after this many seconds
FORGET_AFTER_S = 600.0
#: queues kept per worker
MAX_QUEUES = 100
#: seconds between two inspections while an online worker sends no heartbeats: its answers
#: are all that says it is alive and what it runs, so they must stay fresh
INSPECT_NO_HEARTBEAT_S = 5.0
#: a worker known by its answers alone is online while its last answer is younger than
#: this, timed from the broadcast it answered: three rounds, so one or two answers lost to a
#: busy worker or a short reply window do not flap it offline
ANSWER_TTL_S = 3 * INSPECT_NO_HEARTBEAT_S
#: uptimes (``stats``) over this many seconds (ten years) read as unknown
MAX_UPTIME_S = 10 * 365 * 86_400
#: task ids kept per worker (its current tasks, and those that ended lately)
MAX_TASK_IDS = 256
#: pool module names (``celery.concurrency.<module>:TaskPool``) and the names ``--pool`` takes
_POOL_NAMES = {"thread": "threads"}


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerDetails:
    """A worker with what its events tell beyond :class:`~jobbridge.model.Worker`."""

    worker: Worker
    #: tasks it has taken since it started (all outcomes: not a count of successes)
    processed: int | None = None
    #: the heartbeat interval it announces, seconds
    freq: float = DEFAULT_FREQ
    #: the 1, 5 and 15 minute load averages of its host
    loadavg: tuple[float, ...] | None = None
    #: its software, e.g. ``py-celery`` and ``5.7.0``
    sw_ident: str | None = None
    sw_ver: str | None = None
    #: whether heartbeats tell it is alive (Celery's rule); False while its answers to
    #: inspections do, as for a worker started with ``--without-heartbeat``
    heartbeats: bool = True
    #: when it last answered an inspection (this host's clock), None when never
    last_answer: datetime | None = None


@dataclass(slots=True)
class Seen:
    """What is known of one worker (times: ``time.monotonic``, unless a datetime)."""

    name: str
    #: when its last heartbeat arrived; None when never
    beat_at: float | None = None
    #: when the last inspection it answered was broadcast; None when never
    answered_at: float | None = None
    #: when that answer was read, on the wall clock
    answered_wall: datetime | None = None
    #: when a ``worker-offline`` came (None while none since the last heartbeat)
    offline_at: float | None = None
    #: when it was last heard of at all
    last_seen: float = 0.0
    last_heartbeat: datetime | None = None
    birth: datetime | None = None
    freq: float = DEFAULT_FREQ
    active: int | None = None
    processed: int | None = None
    pid: int | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    loadavg: tuple[float, ...] | None = None
    pool: str | None = None
    concurrency: int | None = None
    queues: tuple[str, ...] = ()
    reserved: int | None = None
    scheduled: int | None = None
    #: the ids of the tasks it runs: its last ``active`` answer, then task events
    current: tuple[str, ...] = ()
    #: ids of tasks that ended lately (``time.monotonic`` of the event), so an answer
    #: made before they ended does not bring them back
    ended: OrderedDict[str, float] = field(default_factory=OrderedDict)
    #: ``task-failed`` events heard from it, and whether it sends task events at all
    failed: int = 0
    task_events: bool = False
    #: how many early inspections were asked for it before it first answered
    early_asks: int = 0

    def by_answers(self) -> bool:
        """Whether its answers, not heartbeats, tell it is alive: it answered and never sent
        a heartbeat, or answered a broadcast sent after its last heartbeat expired."""
        if self.answered_at is None:
            return False
        return self.beat_at is None or self.answered_at >= self._beat_expires(self.beat_at)

    def _beat_expires(self, beat_at: float) -> float:
        return beat_at + self.freq * EXPIRE_FACTOR

    def offline_since(self, now: float) -> float | None:
        """When it went offline; None while online. Celery's rule: until ``freq`` x 2 after
        the last heartbeat arrived, unless a ``worker-offline`` came since; for a worker
        known :meth:`by_answers`, until :data:`ANSWER_TTL_S` after the broadcast it last
        answered."""
        if self.offline_at is not None:
            return self.offline_at
        if self.answered_at is not None and self.by_answers():
            expires = self.answered_at + ANSWER_TTL_S
        elif self.beat_at is not None:
            expires = self._beat_expires(self.beat_at)
        else:
            return self.last_seen
        return None if now < expires else expires

    def forgotten(self, now: float) -> bool:
        since = self.offline_since(now)
        return since is not None and now - since > FORGET_AFTER_S


class Gone(NamedTuple):
    """A worker offline: since when (this host's clock), and its pool when it was told."""

    since: datetime
    pool: str | None


def gone_of(seen: Seen, now: float) -> Gone | None:
    since = seen.offline_since(now)
    if since is None:
        return None
    return Gone(datetime.now(UTC) - timedelta(seconds=max(0.0, now - since)), seen.pool)


def name_of(seen: Seen) -> str:
    return seen.name


def details_of(seen: Seen, now: float, counting_since: datetime | None = None) -> WorkerDetails:
    """The worker as the model shows it. ``counting_since``: when task events began to be
    followed (its failures are counted from then on, or from its birth if later); None
    when they are not followed, and ``failed`` is then unknown."""
    state = "online" if seen.offline_since(now) is None else "offline"
    _, _, host = seen.name.partition("@")
    failed_since = None
    if counting_since is not None and (seen.birth is None or seen.birth < counting_since):
        failed_since = counting_since
    known = counting_since is not None and seen.task_events
    seen_at = [t for t in (seen.last_heartbeat, seen.answered_wall) if t is not None]
    worker = Worker(
        name=seen.name,
        state=state,
        queues=seen.queues,
        birth=seen.birth,
        last_heartbeat=seen.last_heartbeat,
        hostname=host or seen.name,
        pid=seen.pid,
        pool=seen.pool,
        concurrency=seen.concurrency,
        active=seen.active,
        reserved=seen.reserved,
        scheduled=seen.scheduled,
        current_job=seen.current[0] if seen.current else None,
        current_jobs=seen.current,
        processed=seen.processed,
        failed=seen.failed if known else None,
        failed_since=failed_since if known else None,
        last_seen=max(seen_at) if seen_at else None,
    )
    return WorkerDetails(
        worker=worker,
        processed=seen.processed,
        freq=seen.freq,
        loadavg=seen.loadavg,
        sw_ident=seen.sw_ident,
        sw_ver=seen.sw_ver,
        heartbeats=not seen.by_answers(),
        last_answer=seen.answered_wall,
    )


def read_count(value: object) -> int | None:
    """A non-negative integer below 2**63, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        return None
    return value


def read_text(value: object) -> str | None:
    return cap(value, MAX_NAME_CHARS) if isinstance(value, str) else None


def read_freq(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DEFAULT_FREQ
    freq = float(value)
    return freq if MIN_FREQ <= freq <= MAX_FREQ else DEFAULT_FREQ


def read_timestamp(value: object) -> datetime | None:
    """An event's ``timestamp`` (epoch seconds) as an aware UTC datetime."""
    if not isinstance(value, int | float):
        return None
    return times.epoch_s(value)


def read_loadavg(value: object) -> tuple[float, ...] | None:
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        return None
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            return None
        numbers.append(float(item))
    return tuple(numbers)


def read_pool(answer: object) -> tuple[str | None, int | None]:
    """The pool's name and its concurrency from a ``stats`` answer (``pool.implementation``
    ``celery.concurrency.prefork:TaskPool`` -> ``prefork``; ``pool.max-concurrency``)."""
    pool = answer.get("pool") if isinstance(answer, dict) else None
    if not isinstance(pool, dict):
        return None, None
    implementation = pool.get("implementation")
    name = None
    if isinstance(implementation, str) and implementation:
        module = implementation[:1000].partition(":")[0].rsplit(".", 1)[-1]
        name = cap(_POOL_NAMES.get(module, module), MAX_NAME_CHARS) or None
    return name, read_count(pool.get("max-concurrency"))


def read_pid_and_birth(answer: object, now: datetime) -> tuple[int | None, datetime | None]:
    """The pid of a ``stats`` answer, and when the worker started (``uptime``, whole
    seconds, before ``now``)."""
    if not isinstance(answer, dict):
        return None, None
    uptime = read_count(answer.get("uptime"))
    birth = None
    if uptime is not None and uptime <= MAX_UPTIME_S:
        birth = now.replace(microsecond=0) - timedelta(seconds=uptime)
    return read_count(answer.get("pid")), birth


def read_total(answer: object) -> int | None:
    """The tasks a worker has accepted since it started: a ``stats`` answer's ``total``
    (a map of task name -> count) summed; None when it is not such a map."""
    total = answer.get("total") if isinstance(answer, dict) else None
    if not isinstance(total, dict):
        return None
    counts = [read_count(v) for v in list(total.values())[:10_000]]
    if any(c is None for c in counts):
        return None
    summed = sum(c for c in counts if c is not None)
    return summed if summed < 2**63 else None


def read_task_ids(answer: object) -> tuple[str, ...] | None:
    """The task ids of an ``active`` answer (a list of task maps, ``id`` each), at most
    :data:`MAX_TASK_IDS`; None when it is not a list."""
    if not isinstance(answer, list):
        return None
    ids = (task.get("id") if isinstance(task, dict) else None for task in answer)
    return tuple(cap(i, MAX_NAME_CHARS) or "" for i in ids if isinstance(i, str) and i)[
        :MAX_TASK_IDS
    ]


def without_ended(
    ids: Sequence[str], ended: OrderedDict[str, float], since: float
) -> tuple[str, ...]:
    """``ids`` less those that ended at ``since`` or later (an answer made before then)."""
    return tuple(i for i in ids if ended.get(i, float("-inf")) < since)


def read_queues(answer: object) -> tuple[str, ...]:
    """The queue names of an ``active_queues`` answer (a list of queue maps)."""
    if not isinstance(answer, list):
        return ()
    names = []
    for queue in answer[:MAX_QUEUES]:
        name = queue.get("name") if isinstance(queue, dict) else None
        if isinstance(name, str) and name:
            names.append(cap(name, MAX_NAME_CHARS) or "")
    return tuple(names)
