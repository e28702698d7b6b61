"""``doctor``'s check of whether a Celery source's workers send task events.

A worker sends task events (``task-received``, ``-started``, ``-succeeded`` …) only when
started with ``-E`` or with ``worker_send_task_events = True``; its worker events
(``worker-heartbeat`` every 2 s, carrying ``processed``: the tasks it has taken so far) go out
either way. Nothing a worker answers or stores says which (``inspect conf`` shows the app's
setting, not ``-E``; kombu's ``_kombu.binding.celeryev`` is made by whoever *listens*), so
the check listens, bounded: ``PSUBSCRIBE P/<db>.celeryev/*`` for at most ``LISTEN_S``. A
worker that sends a task event has them on; one whose ``processed`` grows between two
heartbeats while it sends none has them off; one that runs no task meanwhile cannot be told.
No worker heard within ``SETTLE_S`` (none running, or all ``--without-heartbeat``; kombu's
workers PSUBSCRIBE their remote-control channel, so ``PUBSUB NUMSUB`` cannot count them):
nothing is said.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis.exceptions

from jobbridge.adapters.celery.control import events_pattern
from jobbridge.adapters.celery.envelope import decode_event
from jobbridge.text import clean

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.settings import SourceConfig

#: longest listen, s: heartbeats come every 2 s, so a busy worker shows two or three
LISTEN_S = 6.0
#: shortest listen, s: a heartbeat period and a half, so each running worker is heard
SETTLE_S = 3.0
#: a heartbeat counts only this long before the listen ends, s: the task events a worker
#: buffered when it took the task it counts are flushed just after
GRACE_S = 0.5
#: workers followed at most (each by its ``hostname``), and characters of a name kept
MAX_WORKERS = 1000
_NAME_CHARS = 200
#: workers named in one line at most
_SHOWN = 5

ENABLE = (
    "start them with -E (or set worker_send_task_events = True in the Celery app); to turn "
    "them on now without a restart: celery -A <app> control enable_events"
)


@dataclass
class _Heard:
    """What one worker's events said during the listen."""

    task_events: int = 0
    #: (arrival, processed) of each heartbeat that carried a count
    beats: list[tuple[float, int]] = field(default_factory=list)

    def ran_tasks(self, before: float) -> bool:
        """Whether ``processed`` grew between two heartbeats that arrived before ``before``."""
        counts = [n for at, n in self.beats if at <= before]
        return len(counts) >= 2 and counts[-1] > counts[0]


async def check(config: SourceConfig, client: Redis) -> list[str]:
    """Doctor's lines on the source's task events (none when they are on, or no worker
    was heard)."""
    prefix = config.effective_key_prefix
    db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    try:
        heard, listened = await _listen(client, events_pattern(prefix, db))
    except redis.exceptions.NoPermissionError:
        return ["task events not checked: this Redis user may not PSUBSCRIBE Celery's events"]
    return _verdict(heard, listened)


async def _listen(client: Redis, pattern: str) -> tuple[dict[str, _Heard], float]:
    """Every event heard for up to ``LISTEN_S`` (``SETTLE_S`` when no worker is heard, or
    every worker heard is told by then); the workers by name, and how long it listened."""
    heard: dict[str, _Heard] = {}
    pubsub = client.pubsub()
    start = time.monotonic()
    try:
        await pubsub.psubscribe(pattern)
        while (now := time.monotonic()) - start < LISTEN_S:
            if now - start >= SETTLE_S and _all_told(heard, now):
                break
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=min(0.25, LISTEN_S - (now - start))
            )
            if message and message.get("type") == "pmessage":
                _take(heard, message.get("data"), time.monotonic())
    finally:
        await pubsub.aclose()
    return heard, time.monotonic() - start


def _all_told(heard: dict[str, _Heard], now: float) -> bool:
    """Whether each worker heard is known on or off (none heard: nothing to wait for)."""
    return all(h.task_events or h.ran_tasks(now - GRACE_S) for h in heard.values())


def _take(heard: dict[str, _Heard], data: object, at: float) -> None:
    if not isinstance(data, bytes):
        return
    for event in decode_event(data):
        host = event.get("hostname")
        if not isinstance(host, str) or not host:
            continue
        host = host[:_NAME_CHARS]
        seen = heard.get(host)
        if seen is None:
            if len(heard) >= MAX_WORKERS:
                continue
            seen = heard[host] = _Heard()
        kind = event["type"]
        if kind.startswith("task-"):
            seen.task_events += 1
        elif kind in ("worker-heartbeat", "worker-online"):
            processed = event.get("processed")
            if isinstance(processed, int) and not isinstance(processed, bool):
                seen.beats.append((at, processed))


def _names(hosts: list[str]) -> str:
    shown = ", ".join(clean(h, _NAME_CHARS) for h in sorted(hosts)[:_SHOWN])
    return shown + (f" and {len(hosts) - _SHOWN} more" if len(hosts) > _SHOWN else "")


def _verdict(heard: dict[str, _Heard], listened: float) -> list[str]:
    """The line for what was heard: workers with events off, or that none could be told."""
    cutoff = time.monotonic() - GRACE_S
    off = [h for h, s in heard.items() if not s.task_events and s.ran_tasks(cutoff)]
    on = [h for h, s in heard.items() if s.task_events]
    if off:
        return [
            f"workers {_names(off)} ran tasks during a {listened:.0f} s listen but sent no task "
            "events: jobbridge then misses the tasks that store no result (ignore_result) and "
            f"running tasks without task_track_started; {ENABLE}"
        ]
    if heard and not on:
        return [
            f"whether task events are on is not known: workers {_names(list(heard))} ran no "
            f"task during a {listened:.0f} s listen; if they run without -E, {ENABLE}"
        ]
    return []
