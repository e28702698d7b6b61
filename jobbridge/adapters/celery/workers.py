"""Celery's workers as an operator sees them: worker events on the source's subscription, and
pidbox broadcasts for what the events do not tell (or for a worker that sends none).

docs/celery.md §4.2 (Workers) says when a worker counts online, how often the watch asks and
what it reads. Everything read is hostile: values are capped, at most :data:`MAX_HOSTS` hosts
are tracked, and each message costs bounded work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis.exceptions

from jobbridge.adapters.celery.control import (
    REPLY_EXCHANGE,
    control_envelope,
    events_pattern,
    pidbox_channel,
    reply_binding,
    reply_list,
    reply_to,
)
from jobbridge.adapters.celery.envelope import decode_event, decode_reply
from jobbridge.adapters.celery.keys import DEFAULT_SEP, CeleryKeys
from jobbridge.adapters.celery.subscription import Subscription
from jobbridge.adapters.celery.worker_state import (
    INSPECT_NO_HEARTBEAT_S,
    MAX_TASK_IDS,
    Gone,
    Seen,
    WorkerDetails,
    details_of,
    gone_of,
    name_of,
    read_count,
    read_freq,
    read_loadavg,
    read_pid_and_birth,
    read_pool,
    read_queues,
    read_task_ids,
    read_text,
    read_timestamp,
    read_total,
    without_ended,
)
from jobbridge.adapters.fields import MAX_NAME_CHARS, cap
from jobbridge.adapters.stopping import cancel_until_done
from jobbridge.model import Worker

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: hosts tracked at most (the one heard from least recently makes room for a new one)
MAX_HOSTS = 1000
#: workers :meth:`WorkerWatch.workers` returns at most
MAX_SHOWN = 200
#: seconds between two inspections while every online worker sends heartbeats: these carry
#: liveness and the active count, so inspection only refreshes pool, queues and reserved
INSPECT_EVERY_S = 10.0
#: seconds between two inspections while no worker is online: a worker that sends no
#: heartbeats is found only by asking, and an idle watch should cost Redis little
INSPECT_DISCOVER_S = 10.0
#: an answer to a broadcast sent this long after a ``worker-offline`` brings the worker
#: back (the one it may give while its warm shutdown stops the pidbox does not)
REVIVE_AFTER_S = 5.0
#: seconds replies to one inspection are awaited
REPLY_WINDOW_S = 1.0
#: the least gap between two inspections, whatever the pace (a new worker asks for one
#: sooner, never more often than this)
MIN_INSPECT_GAP_S = 2.0
#: seconds a worker that just appeared is given to listen to its pidbox before it is asked
_WAKE_SETTLE_S = 1.0
#: sooner inspections asked for a worker that has not answered yet
MAX_EARLY_ASKS = 3
#: a worker event is well under 1 KiB (one per message); bigger messages are skipped unread
MAX_EVENT_MESSAGE_BYTES = 16 * 1024
#: a reply is decoded up to this size (a ``reserved`` list of big tasks can exceed it)
MAX_REPLY_BYTES = 512 * 1024
#: the commands an inspection broadcasts (``reserved``: prefetched tasks; ``scheduled``:
#: tasks held for their eta, which ``reserved`` leaves out; ``active``: the tasks running,
#: each worker's current tasks, and their count for workers that send no heartbeats, which
#: carry it; ``stats``: the pool, pid, uptime and ``total`` tasks accepted by name)
INSPECT_METHODS = ("stats", "active_queues", "reserved", "scheduled", "active")
#: their arguments: ``active`` with ``safe`` lists each task's arguments as Celery's reprs,
#: cut at 1024 characters, not as they are, which keeps the answer within MAX_REPLY_BYTES
INSPECT_ARGUMENTS: Mapping[str, Mapping[str, Any]] = {"active": {"safe": True}}
#: replies read per inspection at most
MAX_REPLIES = len(INSPECT_METHODS) * MAX_HOSTS
#: the worker events followed
WORKER_EVENTS = frozenset({"worker-online", "worker-heartbeat", "worker-offline"})
#: the task events that end a task on its worker (it is no longer one of its current tasks)
TASK_ENDS = frozenset({"task-succeeded", "task-failed", "task-retried", "task-revoked"})
#: seconds ``close`` waits for a cancelled task or a cleanup command
_CLOSE_WAIT_S = 1.0


@dataclass(slots=True)
class _Outage:
    """One background task's view of the connection: each outage is logged once."""

    what: str
    down: bool = False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            log.warning("celery %s: lost the Redis connection (%s); retrying", self.what, exc)
            self.down = True

    def worked(self) -> None:
        if self.down:
            log.info("celery %s: connected to Redis again", self.what)
        self.down = False


class WorkerWatch:
    """Celery's workers, followed in the background.

    Args:
        client: the broker's Redis.
        global_keyprefix: kombu's ``global_keyprefix`` broker transport option.
        db: the broker's database number (part of every channel name).
        source: the configured source's name, for logs.
        sep: kombu's ``sep`` transport option (binding members).
        subscription: the source's shared subscription (None: one of its own on ``client``).
    """

    def __init__(
        self,
        client: Redis,
        *,
        global_keyprefix: str,
        db: int,
        source: str,
        sep: str = DEFAULT_SEP,
        subscription: Subscription | None = None,
    ) -> None:
        self.client = client
        self.global_keyprefix = global_keyprefix
        self.db = db
        self.source = source
        self.sep = sep
        self.pattern = events_pattern(global_keyprefix, db, "worker")
        self.channel = pidbox_channel(global_keyprefix, db)
        #: one reply queue per method, so a reply's list says what it answers
        self._oids = {method: str(uuid.uuid4()) for method in INSPECT_METHODS}
        #: by name, the host heard from least recently first
        self._hosts: OrderedDict[str, Seen] = OrderedDict()
        #: workers forgotten (offline past FORGET_AFTER_S): when they went offline, and
        #: their pool, for :meth:`went_offline`; the oldest go first past MAX_HOSTS
        self._gone: OrderedDict[str, Gone] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._inspecting = asyncio.Lock()
        self._events = _Outage(f"worker events of {source}")
        self._inspections = _Outage(f"worker inspection of {source}")
        #: inspections completed (tests and the status page read it)
        self.inspections = 0
        #: when task events began to reach :meth:`on_task_event` (failures count from then)
        self.counting_since: datetime | None = None
        self._owns_subscription = subscription is None
        self.subscription = subscription or Subscription(client, source=source)
        self.subscription.route(self.pattern, self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start following events and inspecting (idempotent)."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._prune_forever(), name=f"celery-events-{self.source}"),
            asyncio.create_task(self._inspect_forever(), name=f"celery-inspect-{self.source}"),
        ]
        if self._owns_subscription:
            await self.subscription.start()

    async def close(self) -> None:
        """Stop the background tasks (and its own subscription); bounded in time."""
        if self._owns_subscription:
            await self.subscription.close()
        tasks, self._tasks = self._tasks, []
        await cancel_until_done(tasks, _CLOSE_WAIT_S)

    # ------------------------------------------------------------------ reading

    def workers(self) -> tuple[Worker, ...]:
        """The workers known, at most :data:`MAX_SHOWN`, by name; no I/O."""
        return tuple(d.worker for d in self.details())

    def details(self) -> tuple[WorkerDetails, ...]:
        """:meth:`workers` with what else their events tell."""
        now = time.monotonic()
        shown = sorted((s for s in self._hosts.values() if not s.forgotten(now)), key=name_of)
        return tuple(details_of(seen, now, self.counting_since) for seen in shown[:MAX_SHOWN])

    def online(self) -> int:
        """How many workers are online now."""
        now = time.monotonic()
        return sum(1 for s in self._hosts.values() if s.offline_since(now) is None)

    # ------------------------------------------------------------------ events

    def subscribed(self) -> None:
        self._events.worked()

    def lost(self, exc: Exception) -> None:
        self._events.failed(exc)

    async def deliver(self, channel: object, data: object) -> None:
        self.on_message(data, time.monotonic())

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._prune(time.monotonic())

    def on_message(self, data: object, received: float) -> None:
        """Apply one message of an event channel (bounded work; never raises)."""
        if not isinstance(data, bytes) or len(data) > MAX_EVENT_MESSAGE_BYTES:
            return
        for event in decode_event(data):
            try:
                self._apply_event(event, received)
            except Exception:  # a value of a type nobody foresaw: skip that event
                log.debug("celery worker event skipped", exc_info=True)

    def _apply_event(self, event: Mapping[str, Any], received: float) -> None:
        kind = event["type"]
        hostname = event.get("hostname")
        if kind not in WORKER_EVENTS or not isinstance(hostname, str) or not hostname:
            return
        seen, new = self._host(hostname, received)
        was_online = seen.offline_since(received) is None
        seen.freq = read_freq(event.get("freq"))
        seen.last_seen = received
        stamp = read_timestamp(event.get("timestamp"))
        if kind == "worker-offline":
            seen.offline_at = received
        elif stamp is not None:  # as Celery, a heartbeat without a timestamp proves nothing
            seen.offline_at = None
            seen.beat_at = received if seen.beat_at is None else max(seen.beat_at, received)
            if seen.last_heartbeat is None or stamp > seen.last_heartbeat:
                seen.last_heartbeat = stamp
            if kind == "worker-online":
                seen.birth = stamp
        seen.active = read_count(event.get("active"))
        if seen.active == 0:
            seen.current = ()
        seen.processed = read_count(event.get("processed"))
        seen.pid = read_count(event.get("pid"))
        seen.sw_ident = read_text(event.get("sw_ident"))
        seen.sw_ver = read_text(event.get("sw_ver"))
        seen.loadavg = read_loadavg(event.get("loadavg"))
        if (new or not was_online) and seen.offline_since(received) is None:
            self._wake.set()

    def follow_task_events(self) -> None:
        """Task events reach :meth:`on_task_event` from now on (failures count from now)."""
        if self.counting_since is None:
            self.counting_since = datetime.now(UTC)

    def on_task_event(self, kind: str, task_id: object, hostname: object, received: float) -> None:
        """One task event the source's task event feed decoded (bounded work, never raises):
        a task started or ended on a known worker, or failed there. Workers not heard of
        otherwise are not made up from task events."""
        if not isinstance(hostname, str) or not isinstance(task_id, str) or not task_id:
            return
        seen = self._hosts.get(cap(hostname, MAX_NAME_CHARS) or "")
        if seen is None:
            return
        seen.task_events = True
        task = cap(task_id, MAX_NAME_CHARS) or ""
        if kind == "task-started":
            seen.ended.pop(task, None)
            if task not in seen.current:
                seen.current = (*seen.current, task)[-MAX_TASK_IDS:]
        elif kind in TASK_ENDS:
            seen.current = tuple(t for t in seen.current if t != task)
            seen.ended[task] = received
            seen.ended.move_to_end(task)
            while len(seen.ended) > MAX_TASK_IDS:
                seen.ended.popitem(last=False)
            if kind == "task-failed":
                seen.failed += 1

    def _host(self, hostname: str, now: float) -> tuple[Seen, bool]:
        """The record of a host, made if needed (the host heard from least recently makes
        room when :data:`MAX_HOSTS` are tracked); and whether it is new."""
        name = cap(hostname, MAX_NAME_CHARS) or ""
        seen = self._hosts.get(name)
        if seen is not None:
            self._hosts.move_to_end(name)
            return seen, False
        if len(self._hosts) >= MAX_HOSTS:
            self._hosts.popitem(last=False)
        seen = self._hosts[name] = Seen(name=name, last_seen=now)
        self._gone.pop(name, None)
        return seen, True

    def _prune(self, now: float) -> None:
        for name in [n for n, s in self._hosts.items() if s.forgotten(now)]:
            gone = gone_of(self._hosts.pop(name), now)
            if gone is not None:
                self._gone[name] = gone
                self._gone.move_to_end(name)
                if len(self._gone) > MAX_HOSTS:
                    self._gone.popitem(last=False)

    def went_offline(self, hostname: str) -> Gone | None:
        """When a worker this watch knew went offline, and its pool; None while it is
        online, and for a worker never heard of (it may be alive and silent: its events
        do not reach this Redis, or it is a solo worker busy since before the watch began)."""
        name = cap(hostname, MAX_NAME_CHARS) or ""
        seen = self._hosts.get(name)
        if seen is None:
            return self._gone.get(name)
        return gone_of(seen, time.monotonic())

    # ------------------------------------------------------------------ inspection

    async def _inspect_forever(self) -> None:
        while True:
            started = time.monotonic()
            if await self._inspect_guarded() is False:
                return  # not allowed (a viewer's ACL user): workers come from their events
            delay = self._pace()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), max(started + delay - time.monotonic(), 0)
                )
            if self._wake.is_set():
                self._wake.clear()
                # A new worker: give it a moment to listen to its pidbox, and never ask more
                # often than every MIN_INSPECT_GAP_S whatever the events say.
                await asyncio.sleep(
                    max(started + MIN_INSPECT_GAP_S - time.monotonic(), _WAKE_SETTLE_S)
                )

    def _pace(self) -> float:
        """Seconds from the start of one inspection to the next, by what is known now:
        :data:`MIN_INSPECT_GAP_S` while an online worker has not answered yet (a few times
        per worker), :data:`INSPECT_DISCOVER_S` while none is online,
        :data:`INSPECT_NO_HEARTBEAT_S` while one sends no heartbeats, else
        :data:`INSPECT_EVERY_S`."""
        if not self._all_answered():
            return MIN_INSPECT_GAP_S
        now = time.monotonic()
        online = [s for s in self._hosts.values() if s.offline_since(now) is None]
        if not online:
            return INSPECT_DISCOVER_S
        if any(s.by_answers() for s in online):
            return INSPECT_NO_HEARTBEAT_S
        return INSPECT_EVERY_S

    def _all_answered(self) -> bool:
        """Whether every online worker answered once (else the next round comes sooner,
        at most MAX_EARLY_ASKS times per worker)."""
        now = time.monotonic()
        waiting = [
            s
            for s in self._hosts.values()
            if s.offline_since(now) is None
            and s.answered_at is None
            and s.early_asks < MAX_EARLY_ASKS
        ]
        for seen in waiting:
            seen.early_asks += 1
        return not waiting

    async def _inspect_guarded(self) -> bool:
        """One inspection; False when Redis's ACL refuses it (it will not be allowed later)."""
        try:
            await self.inspect()
        except asyncio.CancelledError:
            raise
        except redis.exceptions.NoPermissionError as exc:
            log.warning(
                "celery %s refused by the Redis ACL (%s): workers are "
                "known from their events only (a viewer user may not publish remote control)",
                self._inspections.what,
                exc,
            )
            return False
        except Exception as exc:  # Redis down or refusing: try again at the next round
            self._inspections.failed(exc)
        else:
            self._inspections.worked()
        return True

    async def inspect(self) -> None:
        """One inspection, now: broadcast :data:`INSPECT_METHODS` with replies to the watch's
        own lists, collect replies for up to a second, apply them, and remove the lists and
        their bindings. Inspections never overlap (they share the lists).

        Raises:
            redis.exceptions.RedisError, OSError: Redis failed (nothing is applied then).
        """
        async with self._inspecting:
            await self._inspect()

    async def _inspect(self) -> None:
        lists = {reply_list(self.global_keyprefix, oid): m for m, oid in self._oids.items()}
        bindings = [
            reply_binding(self.global_keyprefix, oid, self.sep) for oid in self._oids.values()
        ]
        keys = CeleryKeys(global_keyprefix=self.global_keyprefix, sep=self.sep)
        tickets = {method: str(uuid.uuid4()) for method in INSPECT_METHODS}
        sent = time.monotonic()
        pipe = self.client.pipeline(transaction=True)
        for set_key, member in bindings:
            pipe.sadd(set_key, member)
        # kombu 5.7 sweeps a reply binding set whose deadline passed: move an existing
        # deadline an hour on, as its clients do (XX: never create the set of deadlines).
        deadline_ms = int(time.time() * 1000) + 3_600_000
        pipe.zadd(keys.binding_deadlines, {REPLY_EXCHANGE: deadline_ms}, xx=True, gt=True)
        for method in INSPECT_METHODS:
            message = control_envelope(
                method,
                INSPECT_ARGUMENTS.get(method, {}),
                ticket=tickets[method],
                reply_to=reply_to(self._oids[method]),
                timeout=REPLY_WINDOW_S,
            )
            pipe.publish(self.channel, message)
        try:
            await pipe.execute()
            replies = await self._collect(lists, tickets)
        finally:
            await _quietly(self._remove(lists, bindings))
        self._apply_replies(replies, sent, time.monotonic())
        self.inspections += 1

    async def _collect(
        self, lists: Mapping[str, str], tickets: Mapping[str, str]
    ) -> dict[str, dict[str, Any]]:
        """Replies by method, then by node name, until every worker online when it began
        answered every method, or the window closes."""
        replies: dict[str, dict[str, Any]] = {method: {} for method in INSPECT_METHODS}
        now = time.monotonic()
        online = {n for n, s in self._hosts.items() if s.offline_since(now) is None}
        waiting = {method: set(online) for method in INSPECT_METHODS}
        deadline = now + REPLY_WINDOW_S
        for _ in range(MAX_REPLIES):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (online and not any(waiting.values())):
                break
            popped = await self.client.blpop(list(lists), timeout=max(min(remaining, 0.25), 0.01))
            if not popped:
                continue
            key, raw = popped
            method = lists.get(key.decode("utf-8", "replace") if isinstance(key, bytes) else key)
            if method is None or not isinstance(raw, bytes):
                continue
            body = decode_reply(raw, ticket=tickets[method], max_bytes=MAX_REPLY_BYTES)
            for node, answer in list((body or {}).items())[:MAX_HOSTS]:
                if isinstance(node, str) and node and len(replies[method]) < MAX_HOSTS:
                    replies[method][node] = answer
                    waiting[method].discard(cap(node, MAX_NAME_CHARS) or "")
        return replies

    async def _remove(self, lists: Mapping[str, str], bindings: list[tuple[str, str]]) -> None:
        """Unbind first, so a late reply is dropped by the worker rather than left in a list
        nobody reads, then delete the lists."""
        pipe = self.client.pipeline(transaction=True)
        for set_key, member in bindings:
            pipe.srem(set_key, member)
        pipe.delete(*lists)
        await asyncio.wait_for(pipe.execute(), _CLOSE_WAIT_S)

    def _apply_replies(
        self, replies: Mapping[str, Mapping[str, Any]], sent: float, now: float
    ) -> None:
        """Apply what the workers answered a broadcast ``sent`` then (``time.monotonic``)."""
        wall = datetime.now(UTC)
        for node in {n for answers in replies.values() for n in answers}:
            seen, _ = self._host(node, now)
            seen.last_seen = now
            seen.answered_at = sent if seen.answered_at is None else max(seen.answered_at, sent)
            seen.answered_wall = wall
            if seen.offline_at is not None and sent - seen.offline_at >= REVIVE_AFTER_S:
                seen.offline_at = None  # a worker back, without the heartbeats that say so
            stats = replies["stats"].get(node)
            if stats is not None:
                seen.pool, seen.concurrency = read_pool(stats)
            if node in replies["active_queues"]:
                seen.queues = read_queues(replies["active_queues"][node])
            # As Celery's inspect: ``reserved`` leaves out the tasks held for their eta,
            # which ``scheduled`` lists, and the running ones, which ``active`` lists.
            reserved = replies["reserved"].get(node)
            seen.reserved = len(reserved) if isinstance(reserved, list) else None
            scheduled = replies["scheduled"].get(node)
            seen.scheduled = len(scheduled) if isinstance(scheduled, list) else None
            active = replies["active"].get(node)
            running = read_task_ids(active)
            if running is not None:
                seen.current = without_ended(running, seen.ended, sent)
            if stats is not None:
                seen.processed = read_total(stats)
                pid, birth = read_pid_and_birth(stats, wall)
                if seen.by_answers() or seen.birth is None:  # else its worker-online's
                    seen.pid, seen.birth = pid if seen.pid is None else seen.pid, birth
            if seen.by_answers():
                seen.active = len(active) if isinstance(active, list) else None
            elif isinstance(active, list) and (seen.beat_at is None or seen.beat_at < sent):
                # the newest word wins: the answer, unless a heartbeat came since the
                # broadcast (the next heartbeat, within its freq, tells it again)
                seen.active = len(active)


async def _quietly(awaitable: Any) -> None:
    """Await a cleanup step for at most ``_CLOSE_WAIT_S``, whatever it raises (a
    cancellation of the caller still propagates)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, _CLOSE_WAIT_S)
