"""Celery's task events (workers started with ``-E``), followed on the source's subscription and
written into jobbridge's result index, where a meta outranks an event (docs/celery.md §4.3).
Events name a task only when it is received, so what they say of recent tasks is remembered
(at most :data:`REMEMBERED`); everything read is hostile and capped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from jobbridge.adapters.celery.control import events_pattern
from jobbridge.adapters.celery.envelope import decode_event
from jobbridge.adapters.celery.index_store import WriteCounts
from jobbridge.adapters.celery.index_summary import (
    ARGS_PREVIEW_CHARS,
    ERROR_CHARS,
    ID_CHARS,
    STATE_RANK,
    Entry,
    dump_summary,
)
from jobbridge.adapters.celery.result_meta import READY_STATES
from jobbridge.adapters.celery.subscription import Inbox, Subscription
from jobbridge.adapters.celery.tail_ages import SentTimes
from jobbridge.adapters.fields import MAX_NAME_CHARS
from jobbridge.adapters.redis_errors import UNAVAILABLE_ERRORS
from jobbridge.adapters.stopping import cancel_until_done

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.celery.index import ResultIndex

log = logging.getLogger(__name__)

#: event type -> the Celery state it stands for in the index (``task-received`` and
#: ``task-sent`` only tell what the later events of the task lack)
EVENT_STATES: Mapping[str, str] = {
    "task-started": "STARTED",
    "task-succeeded": "SUCCESS",
    "task-failed": "FAILURE",
    "task-retried": "RETRY",
    "task-revoked": "REVOKED",
}
#: the events that describe a task (its name, arguments, queue, links)
DESCRIBING = frozenset({"task-sent", "task-received"})
#: tasks whose description is remembered, the least recently described going first
REMEMBERED = 20_000
#: and the bytes their descriptions may take (ids, names, args, queues as Python holds
#: them: an astral character is 4 bytes): hostile events with long fields of such
#: characters would otherwise make the 20,000 take 100 MB. A typical task takes ~600 bytes,
#: so about 13,000 fit; one with every field at its cap ~5 KB (1,600 fit).
REMEMBERED_BYTES = 8 * 1024 * 1024
#: what one remembered entry costs beyond its strings (the tuple, the map's slot)
_ENTRY_OVERHEAD = 160
#: an event's timestamp is trusted up to this far ahead of its arrival, ms (clock skew)
FUTURE_SKEW_MS = 60_000
#: an event from before this (2001) is no time: its arrival stands in
EARLIEST_MS = 1_000_000_000_000
#: the feed writes after this many entries, or this long after the first one
BATCH_MAX = 500
BATCH_WAIT_S = 0.1
#: longest ``close`` waits for the feed to stop
CLOSE_WAIT_S = 2.0


class Described(NamedTuple):
    """What ``task-sent`` / ``task-received`` told of a task."""

    name: str | None
    args: str | None
    queue: str | None
    retries: int | None
    parent: str | None
    root: str | None


def _text(value: object, limit: int) -> str | None:
    """Event text, cut, without the lone surrogates no page can print."""
    if not isinstance(value, str) or not value:
        return None
    text = value.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "…"


def remembered_size(task_id: str, described: Described) -> int:
    """Bytes one remembered description holds (``sys.getsizeof`` of its strings, which
    counts 4 bytes for each astral character, and the entry's own overhead)."""
    size = _ENTRY_OVERHEAD + sys.getsizeof(task_id)
    for value in described:
        if isinstance(value, str):
            size += sys.getsizeof(value)
    return size


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        return None
    return value


def _inner(text: str) -> str:
    """``(2, 3)`` or ``[2, 3]`` (Celery's repr of the args) without its brackets."""
    if len(text) >= 2 and text[0] + text[-1] in ("()", "[]"):
        return text[1:-1].removesuffix(",")
    return text


def args_preview(name: str | None, args: object, kwargs: object) -> str | None:
    """``tasks.add(2, 3, b={...})``-like line from the reprs an event carries (Celery cuts
    them itself: ``argsrepr_maxsize``); None when the event has none."""
    if not isinstance(args, str) and not isinstance(kwargs, str):
        return None
    pieces = []
    if isinstance(args, str) and _inner(args).strip():
        pieces.append(_inner(args))
    if isinstance(kwargs, str) and kwargs.strip() not in ("", "{}"):
        pieces.append("**" + kwargs)
    return _text(f"{name or '?'}({', '.join(pieces)})", ARGS_PREVIEW_CHARS)


def describe(event: Mapping[str, Any], earlier: Described | None) -> Described:
    """A task's description from a ``task-sent`` / ``task-received`` event, keeping what an
    earlier one told and this one does not (``task-received`` names no queue)."""
    name = _text(event.get("name"), MAX_NAME_CHARS)
    queue = _text(event.get("queue") or event.get("routing_key"), ID_CHARS)
    got = Described(
        name=name,
        args=args_preview(name, event.get("args"), event.get("kwargs")),
        queue=queue,
        retries=_count(event.get("retries")),
        parent=_text(event.get("parent_id"), ID_CHARS),
        root=_text(event.get("root_id"), ID_CHARS),
    )
    if earlier is None:
        return got
    return Described(
        name=got.name or earlier.name,
        args=got.args or earlier.args,
        queue=got.queue or earlier.queue,
        retries=got.retries if got.retries is not None else earlier.retries,
        parent=got.parent or earlier.parent,
        root=got.root or earlier.root,
    )


def event_ms(value: object, arrived_ms: int) -> int:
    """An event's timestamp (Unix seconds, float) in ms; its arrival when it is no time."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return arrived_ms
    ms = int(value * 1000)
    if ms < EARLIEST_MS:
        return arrived_ms
    return min(ms, arrived_ms + FUTURE_SKEW_MS)


def event_version(state: str, at_ms: int) -> str:
    """The script's version of an event's entry: by its time, then the state's rank, then
    ``:e`` (a meta of the task outranks it: see the script)."""
    finished = "1" if state in READY_STATES else "0"
    return f"{finished}:{min(max(at_ms, 0), 10**15 - 1):015d}:{STATE_RANK[state]}:e"


def entry_of(
    event: Mapping[str, Any], described: Described | None, arrived_ms: int
) -> Entry | None:
    """The index entry of one task event, None for an event that changes no state."""
    state = EVENT_STATES.get(event.get("type", ""))
    task_id = event.get("uuid")
    if state is None or not isinstance(task_id, str) or not 0 < len(task_id) <= ID_CHARS:
        return None
    known = described or Described(None, None, None, None, None, None)
    at_ms = event_ms(event.get("timestamp"), arrived_ms)
    error = None
    if state in ("FAILURE", "RETRY"):
        error = _text(event.get("exception"), ERROR_CHARS)
    elif state == "REVOKED" and event.get("expired") is True:
        error = "expired"
    body = dump_summary(
        {
            "state": state,
            "name": known.name,
            "queue": known.queue,
            "worker": _text(event.get("hostname"), ID_CHARS),
            "args": known.args,
            "error": error,
            "retries": known.retries,
            "parent": known.parent,
            "root": known.root,
            "ext": False,
            "src": "events",
        }
    )
    task = task_id.encode("utf-8", "surrogateescape")
    return Entry(task, state, event_version(state, at_ms), at_ms, body)


class WorkerTasks(Protocol):
    """Who else hears the task events the feed decodes: the worker watch (each worker's
    current tasks and failures, :class:`~jobbridge.adapters.celery.workers.WorkerWatch`)."""

    def follow_task_events(self) -> None: ...

    def on_task_event(
        self, kind: str, task_id: object, hostname: object, received: float
    ) -> None: ...


class TaskEventFeed:
    """Follows one Celery source's task events into its result index, in the background.

    Args:
        client: the broker's Redis.
        index: the source's result index.
        global_keyprefix: kombu's ``global_keyprefix`` of the broker.
        db: the broker's database number (part of every channel name).
        source: the source's name, for logs.
        clock: Unix seconds (tests move it).
        subscription: the source's shared subscription (None: one of its own on ``client``).
        sent_times: where ``task-sent`` times are noted (None: a map of its own).
        worker_tasks: told of every task event too (None: nobody).
    """

    def __init__(
        self,
        client: Redis,
        index: ResultIndex,
        *,
        global_keyprefix: str,
        db: int,
        source: str,
        clock: Any = time.time,
        subscription: Subscription | None = None,
        sent_times: SentTimes | None = None,
        worker_tasks: WorkerTasks | None = None,
    ) -> None:
        self.client = client
        self.worker_tasks = worker_tasks
        #: ``task-sent`` times by task id, for the oldest waiting ages (tail_ages.py)
        self.sent_times = sent_times if sent_times is not None else SentTimes()
        self.index = index
        self.source = source
        self.clock = clock
        self.pattern = events_pattern(global_keyprefix, db, "task")
        self._described: OrderedDict[str, Described] = OrderedDict()
        #: bytes the remembered descriptions take (see REMEMBERED_BYTES)
        self.remembered_bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._outage = False
        #: task events read, entries written by the script, events of no use (by type)
        self.events = 0
        self.written = WriteCounts()
        self.ignored: Counter[str] = Counter()
        #: subscriptions Redis confirmed
        self.subscriptions = 0
        self._inbox: Inbox[Entry] = Inbox(BATCH_MAX)
        self._owns_subscription = subscription is None
        self.subscription = subscription or Subscription(client, source=source)
        self.subscription.route(self.pattern, self)

    async def start(self) -> None:
        """Start following (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name=f"{self.source} task events")
        if self._owns_subscription:
            await self.subscription.start()

    async def close(self) -> None:
        if self._owns_subscription:
            await self.subscription.close()
        task, self._task = self._task, None
        if task is not None:
            await cancel_until_done([task], CLOSE_WAIT_S)

    def read(self, data: object) -> list[Entry]:
        """The entries one message of a task channel gives; bounded work, never raises."""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if not isinstance(data, bytes):
            return []
        arrived_ms = int(self.clock() * 1000)
        entries = []
        for event in decode_event(data):
            self.events += 1
            try:
                entry = self._apply(event, arrived_ms)
            except Exception:  # a value of a type nobody foresaw: skip that event
                log.debug("%s: task event skipped", self.source, exc_info=True)
                entry = None
            if entry is not None:
                entries.append(entry)
        return entries

    def _apply(self, event: Mapping[str, Any], arrived_ms: int) -> Entry | None:
        kind = str(event["type"])[:40]
        task_id = event.get("uuid")
        if self.worker_tasks is not None:
            self.worker_tasks.on_task_event(kind, task_id, event.get("hostname"), time.monotonic())
        if kind in DESCRIBING and isinstance(task_id, str) and 0 < len(task_id) <= ID_CHARS:
            if kind == "task-sent":
                self.sent_times.note(task_id, event_ms(event.get("timestamp"), arrived_ms))
            earlier = self._forget(task_id)
            self._remember(task_id, describe(event, earlier))
            return None
        described = self._described.get(task_id) if isinstance(task_id, str) else None
        entry = entry_of(event, described, arrived_ms)
        if entry is None:
            self.ignored[kind] += 1
        elif entry.state in READY_STATES and isinstance(task_id, str):
            self._forget(task_id)
        return entry

    def _remember(self, task_id: str, described: Described) -> None:
        """Keep a description, forgetting the least recently described ones past either
        bound (entries, bytes)."""
        self._described[task_id] = described
        self.remembered_bytes += remembered_size(task_id, described)
        while self._described and (
            len(self._described) > REMEMBERED or self.remembered_bytes > REMEMBERED_BYTES
        ):
            oldest, gone = self._described.popitem(last=False)
            self.remembered_bytes -= remembered_size(oldest, gone)

    def _forget(self, task_id: str) -> Described | None:
        gone = self._described.pop(task_id, None)
        if gone is not None:
            self.remembered_bytes -= remembered_size(task_id, gone)
        return gone

    def subscribed(self) -> None:
        self.subscriptions += 1  # Redis confirmed it (an ACL refusal raises instead)
        if self.worker_tasks is not None:
            self.worker_tasks.follow_task_events()
        if self._outage:
            log.warning("%s: task events followed again", self.source)
        self._outage = False

    def lost(self, exc: Exception) -> None:
        if not self._outage:
            self._outage = True
            log.warning(
                "%s: task event subscription lost (%s); reconnecting",
                self.source,
                exc,
                exc_info=not isinstance(exc, UNAVAILABLE_ERRORS),
            )

    async def deliver(self, channel: object, data: object) -> None:
        for entry in self.read(data):
            await self._inbox.put(entry)

    async def _follow(self) -> None:
        """Write entries in batches (``BATCH_MAX``, or ``BATCH_WAIT_S`` after the first)."""
        while True:
            entries = await self._inbox.batch(BATCH_MAX, BATCH_WAIT_S)
            # by task: of one task's events in a batch only the latest is written (the one
            # the script would keep: among events the highest version wins)
            batch: dict[bytes, Entry] = {}
            for entry in entries:
                held = batch.get(entry.task_id)
                if held is None or entry.version > held.version:
                    batch[entry.task_id] = entry
            try:
                await self._write(list(batch.values()))
            except Exception:  # a bug: these events are lost (a result, if any, is not)
                log.exception("%s: %d task events not indexed", self.source, len(batch))

    async def _write(self, entries: list[Entry]) -> None:
        try:
            self.written = self.written + await self.index.write(entries)
        except UNAVAILABLE_ERRORS as exc:
            # the index's Redis failed: these events are lost (a result, if any, is not)
            log.warning("%s: %d task events not indexed (%s)", self.source, len(entries), exc)
