"""jobbridge's own index of Celery's result metas, kept in Redis (docs/celery.md §4.3): fed by
the source's subscription to the metas the backend publishes, and by a backfill
(:mod:`.index_backfill`) for what it missed; stored by :mod:`.index_store`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobbridge.adapters.celery.index_backfill import (
    CLEANUP_S,
    Backfill,
)
from jobbridge.adapters.celery.index_store import IndexSettings, IndexStore, MetaBytes
from jobbridge.adapters.celery.subscription import Inbox, Subscription
from jobbridge.adapters.redis_errors import UNAVAILABLE_ERRORS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.celery.keys import CeleryKeys

log = logging.getLogger(__name__)

#: longest :meth:`ResultIndex.close` waits for its tasks to end
CLOSE_WAIT_S = 2.0


class ResultIndex(IndexStore):
    """The index of one Celery source's results, fed in the background.

    Args: those of :class:`.index_store.IndexStore`, and
        subscription: the source's shared subscription on ``results`` (None: one of its own).
    """

    def __init__(
        self,
        broker: Redis,
        results: Redis,
        *,
        keys: CeleryKeys,
        base: str,
        source: str,
        lifecycle_prefix: str,
        settings: IndexSettings | None = None,
        clock: Callable[[], float] = time.time,
        subscription: Subscription | None = None,
    ) -> None:
        super().__init__(
            broker,
            results,
            keys=keys,
            base=base,
            source=source,
            lifecycle_prefix=lifecycle_prefix,
            settings=settings,
            clock=clock,
        )
        self.backfill = Backfill(self)
        self._owns_subscription = subscription is None
        self.subscription = subscription or Subscription(
            results, source=source, backoff_s=self.settings.backoff_s
        )
        self.subscription.route(self.pattern, self)
        self._inbox: Inbox[MetaBytes] = Inbox(self.settings.batch_max)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = False
        self._ever_subscribed = False
        self._sub_outage = False
        #: events received; subscriber reconnections
        self.events = 0
        self.reconnects = 0

    async def start(self) -> None:
        """Start the subscriber and the maintenance loop (backfill passes, trims); a pass
        runs at once. Idempotent."""
        if self._tasks and not all(t.done() for t in self._tasks):
            return
        self.backfill.request()
        self._tasks = [
            asyncio.create_task(self._write_forever(), name=f"{self.source} index subscriber"),
            asyncio.create_task(
                self.backfill.maintain_forever(), name=f"{self.source} index backfill"
            ),
        ]
        if self._owns_subscription:
            await self.subscription.start()

    async def close(self) -> None:
        """Stop the background work now. A pass in progress keeps its cursor in Redis (the
        next pass, of this or another replica, resumes it); its lock is released."""
        if self._owns_subscription:
            await self.subscription.close()
        tasks, self._tasks = self._tasks, []
        pending = set(tasks)
        # Each task's own cleanup (the lock release) takes CLEANUP_S at most. A
        # task still running after that had its cancellation swallowed (asyncio.wait_for
        # in some library can do that): it is cancelled once more.
        for wait in (CLEANUP_S + 0.2, CLOSE_WAIT_S - CLEANUP_S - 0.2):
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=wait)
        if pending:
            log.warning("%s: result index tasks still running after close", self.source)
        self._subscribed = False

    # ---- Listener of the subscription

    def subscribed(self) -> None:
        if self._ever_subscribed:
            # subscribed again (after a loss, or redis-py reconnected by itself): events
            # were missed
            self.reconnects += 1
            self.backfill.request()
        if self._sub_outage:
            log.warning("%s: result subscription back", self.source)
        self._ever_subscribed = True
        self._subscribed = True
        self._sub_outage = False

    def lost(self, exc: Exception) -> None:
        self._subscribed = False
        if not self._sub_outage:
            self._sub_outage = True
            log.warning(
                "%s: result subscription lost (%s); reconnecting, then a backfill pass",
                self.source,
                exc,
                exc_info=not isinstance(exc, UNAVAILABLE_ERRORS),
            )

    async def deliver(self, channel: object, data: object) -> None:
        """A published meta, its two ends only when it is big (the inbox and a batch hold
        at most ``batch_max`` times READ_BYTES + TAIL_BYTES of them each)."""
        channel = (
            channel.encode("utf-8", "surrogateescape") if isinstance(channel, str) else channel
        )
        data = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
            return
        self.events += 1
        if not channel.startswith(self.meta_prefix) or len(channel) == len(self.meta_prefix):
            self.skip(channel, "a channel that names no task")
            return
        await self._inbox.put(MetaBytes.of(channel[len(self.meta_prefix) :], data, self.now_ms()))

    async def _write_forever(self) -> None:
        """Write events in batches (``batch_max``, or ``batch_wait_s`` after the first)."""
        s = self.settings
        while True:
            events = await self._inbox.batch(s.batch_max, s.batch_wait_s)
            try:
                await self.ingest_metas(events)
            except Exception as exc:  # these events are lost: a pass will find their metas
                log.warning(
                    "%s: %d result events not indexed (%s)",
                    self.source,
                    len(events),
                    exc,
                    exc_info=not isinstance(exc, UNAVAILABLE_ERRORS),
                )
                self.backfill.request()

    async def status(self) -> dict[str, object]:
        """The backfill's stored progress and this replica's view of its own work."""
        return {
            "source": self.source,
            **await self.backfill.status(),
            "subscriber_connected": self._subscribed,
            "reconnects": self.reconnects,
            "events": self.events,
            "written": self.written._asdict(),
            "skipped": dict(self.skipped),
        }
