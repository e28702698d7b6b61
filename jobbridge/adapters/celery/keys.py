"""Key names of Celery's Redis layout, kombu's broker keys and the result backend's, and
jobbridge's own keys of a Celery source (:class:`JobbridgeKeys`), as docs/celery.md §1, §3 and
§4 state them.
"""

from __future__ import annotations

from bisect import bisect
from dataclasses import dataclass
from typing import NamedTuple

#: kombu's separator inside priority list names and binding members
DEFAULT_SEP = "\x06\x16"
#: kombu's default priority steps; step 0 is the bare queue name and is served first
PRIORITY_STEPS = (0, 3, 6, 9)
#: the range kombu clamps a message's ``properties.priority`` into before picking a step
MIN_PRIORITY = 0
MAX_PRIORITY = 9

UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
UNACKED_MUTEX = "unacked_mutex"
BINDING_PREFIX = "_kombu.binding."
#: kombu 5.7+: bindings of queues that never expire
BINDING_PERMANENT_PREFIX = "_kombu.binding_permanent."
#: kombu 5.7+: zset of exchange -> deadline (ms) of its expiring bindings
BINDING_DEADLINES = "_kombu.binding_deadlines"

TASK_META_PREFIX = "celery-task-meta-"
GROUP_META_PREFIX = "celery-taskset-meta-"
#: jobbridge's own keys: the default ``jobbridge_prefix`` (``Settings.jobbridge_prefix``), and
#: the names under a Celery source's part of it (see :class:`JobbridgeKeys`)
JOBBRIDGE_PREFIX = "jobbridge:"
INDEX = "index:"
PRIORITY_SEEN = "priority:"
TAIL_SEEN = "tail_seen"

#: the characters a result backend prefix may end in without Celery adding ``_``
_RESULT_PREFIX_ENDS = ":_-."
#: longest priority text read (a longer one is not a number kombu wrote)
_MAX_PRIORITY_CHARS = 24


class Binding(NamedTuple):
    """One member of a ``_kombu.binding.<exchange>`` set."""

    routing_key: str
    pattern: str
    queue: str


def result_keyprefix(global_keyprefix: str) -> str:
    """The result backend's key prefix for its ``global_keyprefix`` transport option, as
    Celery builds it: ``_`` is appended unless the prefix ends in one of ``: _ - .``."""
    if global_keyprefix and global_keyprefix[-1] not in _RESULT_PREFIX_ENDS:
        return global_keyprefix + "_"
    return global_keyprefix


def clamp_priority(priority: object) -> int:
    """A message's ``properties.priority`` as kombu reads it: ``int()`` of it clamped to
    0..9, and 0 for anything ``int()`` refuses (None, a list, "high", NaN)."""
    if isinstance(priority, str):
        if len(priority) > _MAX_PRIORITY_CHARS:
            return MIN_PRIORITY
    elif not isinstance(priority, int | float):  # bool is an int, as int() takes it
        return MIN_PRIORITY
    try:
        value = int(priority)
    except (ValueError, OverflowError):  # "x", "1.5", NaN, inf
        return MIN_PRIORITY
    return max(MIN_PRIORITY, min(value, MAX_PRIORITY))


@dataclass(frozen=True, slots=True)
class CeleryKeys:
    """Every key name of one Celery deployment's Redis layout.

    Args:
        global_keyprefix: kombu's ``global_keyprefix`` broker transport option.
        sep: kombu's ``sep`` transport option.
        priority_steps: kombu's ``priority_steps`` transport option (ascending).
        result_global_keyprefix: the ``global_keyprefix`` of
            ``result_backend_transport_options`` (see :func:`result_keyprefix`).
    """

    global_keyprefix: str = ""
    sep: str = DEFAULT_SEP
    priority_steps: tuple[int, ...] = PRIORITY_STEPS
    result_global_keyprefix: str = ""

    def __post_init__(self) -> None:
        steps = self.priority_steps
        if not steps or list(steps) != sorted(set(steps)):
            raise ValueError(f"priority_steps must be ascending and not empty: {steps!r}")
        if not self.sep:
            raise ValueError("sep must not be empty")

    # ------------------------------------------------------------ queues

    def step_of(self, priority: object) -> int:
        """The priority step a message of this ``properties.priority`` is pushed to.

        kombu clamps it (:func:`clamp_priority`), then takes the highest step not above it
        (``bisect``); below the lowest step, Python's ``steps[-1]`` gives the highest one.
        """
        steps = self.priority_steps
        return steps[bisect(steps, clamp_priority(priority)) - 1]

    def step_list(self, queue: str, step: int) -> str:
        """The list of one priority step: the queue itself for step 0, else
        ``queue + sep + step``."""
        name = queue if step == 0 else f"{queue}{self.sep}{step}"
        return self.global_keyprefix + name

    def queue_name_problem(
        self, queue: str, jobbridge_prefix: str = JOBBRIDGE_PREFIX
    ) -> str | None:
        """Why a queue name read from stored data (a result's ``queue``, a binding member)
        would make lists that are not a queue's own; None when they are its own.

        A queue list is the bare name (behind ``global_keyprefix``), so any name could land
        on another key: refused are names whose lists would be kombu's bookkeeping
        (``unacked``, ``unacked_index``, ``unacked_mutex``, the ``_kombu.`` bindings), its
        remote-control and event queues (``*.celery.pidbox``, ``*.reply.celery.pidbox``,
        ``celeryev.*``), the result backend's keys, jobbridge's own keys, or another queue's
        priority list (a name holding ``sep``)."""
        if self.sep in queue:
            return "its lists would be the priority lists of another queue"
        if queue in (UNACKED, UNACKED_INDEX, UNACKED_MUTEX) or queue.startswith("_kombu."):
            return "it names kombu's own bookkeeping, not a queue"
        if queue.endswith(".celery.pidbox") or queue.startswith("celeryev."):
            return "it names a remote-control or event queue of Celery, not a task queue"
        keys = self.priority_lists(queue)
        results = result_keyprefix(self.result_global_keyprefix)
        own = (results + TASK_META_PREFIX, results + GROUP_META_PREFIX, jobbridge_prefix or "\0")
        if any(key.startswith(own) for key in keys):
            return "it names a result or one of jobbridge's own keys, not a queue"
        return None

    def priority_list(self, queue: str, priority: object = 0) -> str:
        """The list a message of this priority waits in."""
        return self.step_list(queue, self.step_of(priority))

    def priority_lists(self, queue: str) -> tuple[str, ...]:
        """Every list of a queue, in the order workers take from them: the lowest step first,
        which is the highest priority on Redis. Producers LPUSH, workers BRPOP, so in each
        list the last element (``LRANGE key -1 -1``) runs next."""
        return tuple(self.step_list(queue, step) for step in self.priority_steps)

    # ------------------------------------------------------------ ack emulation

    @property
    def unacked(self) -> str:
        """Hash: delivery tag -> JSON ``[message, exchange, routing_key]`` of messages a
        worker has taken and not acknowledged (prefetched, ETA-held, or running late-acked)."""
        return self.global_keyprefix + UNACKED

    @property
    def unacked_index(self) -> str:
        """Zset: delivery tag scored by the time (epoch seconds) it was delivered."""
        return self.global_keyprefix + UNACKED_INDEX

    @property
    def unacked_mutex(self) -> str:
        """The lock a worker holds while it restores messages past the visibility timeout."""
        return self.global_keyprefix + UNACKED_MUTEX

    # ------------------------------------------------------------ bindings

    def binding(self, exchange: str) -> str:
        """Set of ``routing_key + sep + pattern + sep + queue`` members of an exchange."""
        return f"{self.global_keyprefix}{BINDING_PREFIX}{exchange}"

    def binding_permanent(self, exchange: str) -> str:
        """kombu 5.7+: the members of :meth:`binding` whose queues never expire."""
        return f"{self.global_keyprefix}{BINDING_PERMANENT_PREFIX}{exchange}"

    @property
    def binding_deadlines(self) -> str:
        return self.global_keyprefix + BINDING_DEADLINES

    def exchange_of_binding_key(self, key: str) -> str | None:
        """The exchange a :meth:`binding` key names; None for any other key."""
        head = f"{self.global_keyprefix}{BINDING_PREFIX}"
        return key[len(head) :] if key.startswith(head) else None

    def parse_binding(self, member: bytes | str) -> Binding | None:
        """A binding set member split into its three parts; None unless it has exactly
        three (bytes that are not UTF-8 are replaced)."""
        text = member.decode("utf-8", "replace") if isinstance(member, bytes) else member
        parts = text.split(self.sep)
        if len(parts) != 3:
            return None
        return Binding(parts[0], parts[1], parts[2])

    def queue_of_binding(self, member: bytes | str) -> str | None:
        """The queue a binding member routes to; None when malformed or empty."""
        binding = self.parse_binding(member)
        return binding.queue if binding is not None and binding.queue else None

    # ------------------------------------------------------------ results

    @property
    def task_meta_prefix(self) -> str:
        return result_keyprefix(self.result_global_keyprefix) + TASK_META_PREFIX

    def task_meta(self, task_id: str) -> str:
        """The string holding a task's result meta (JSON unless ``result_serializer`` says
        otherwise); a missing key reads as PENDING."""
        return self.task_meta_prefix + task_id


@dataclass(frozen=True, slots=True)
class JobbridgeKeys:
    """jobbridge's own keys of one Celery source, in the broker's database.

    They all begin ``<jobbridge_prefix>celery:<global_keyprefix>:``, as the lifecycle list
    (``operator.OperatorKeys``: ``…:lifecycle``) and the result index (``…:index:``) do.

    Args:
        global_keyprefix: kombu's ``global_keyprefix`` of the broker (the source's namespace).
        jobbridge_prefix: the source's ``jobbridge_prefix``.
    """

    global_keyprefix: str = ""
    jobbridge_prefix: str = JOBBRIDGE_PREFIX

    @property
    def base(self) -> str:
        return f"{self.jobbridge_prefix}celery:{self.global_keyprefix}:"

    @property
    def index(self) -> str:
        """The result index's key prefix (``index.ResultIndex``'s ``base``)."""
        return self.base + INDEX

    @property
    def tail_seen(self) -> str:
        """Hash, with a TTL: delivery tag -> when the message at a broker list's oldest end
        was first seen there, or sent (``celery/tail_ages.py``, ``lua/ages/tail_seen.lua``)."""
        return self.base + TAIL_SEEN

    def priority_seen(self, task_id: str) -> str:
        """String, with a TTL: a task's ``properties.priority`` (clamped, 0..9) as jobbridge
        saw it while a worker held its message, written only when it is not on the default
        step. Celery's result does not keep a priority; a retry reads it from here."""
        return f"{self.base}{PRIORITY_SEEN}{task_id}"
