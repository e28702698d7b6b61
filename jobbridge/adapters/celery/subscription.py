"""One pattern subscription per Celery source, fanned out by pattern to its listeners.

The worker watch, the result index and the task event feed each follow a pattern; they
share one pub/sub connection and one reconnect policy (backoff doubling from its first to
its longest wait, afresh once Redis confirmed a pattern). A pattern the ACL refuses is lost
to its listeners alone and asked for again after a wait. What a loss means is each
listener's own: the index runs a backfill pass, the event feed has lost events for good.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import redis.exceptions

from jobbridge.adapters.stopping import cancel_until_done

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

#: reconnect delays: first, longest
BACKOFF_S = (0.5, 10.0)
#: longest the close of a lost subscription may take
CLOSE_S = 1.0
#: longest :meth:`Subscription.close` waits for the reader to stop
CLOSE_WAIT_S = 2.0
#: seconds one read waits for a message before it reads again
READ_WAIT_S = 1.0

T = TypeVar("T")


class Listener(Protocol):
    """What a subscription tells the follower of one pattern. None of these may raise (a
    raise is taken for a broken connection: every listener loses it)."""

    def subscribed(self) -> None:
        """Redis confirmed the pattern (again after each reconnection)."""

    def lost(self, exc: Exception) -> None:
        """The connection failed (or could not be made); it is tried again after a wait."""

    async def deliver(self, channel: object, data: object) -> None:
        """One message of the pattern, as redis-py read it; bounded work (awaiting only
        while the listener's own writer is a full batch behind)."""


class Subscription:
    """A PSUBSCRIBE of every routed pattern on one connection, kept up until closed.

    Args:
        client: the Redis to subscribe on.
        source: the source's name (task names, logs).
        backoff_s: the wait before subscribing again: first, longest (doubling between).
    """

    def __init__(
        self, client: Redis, *, source: str, backoff_s: tuple[float, float] = BACKOFF_S
    ) -> None:
        self.client = client
        self.source = source
        self.backoff_s = backoff_s
        self._routes: dict[bytes, list[Listener]] = {}
        self._task: asyncio.Task[None] | None = None
        #: confirmations Redis sent (one per pattern and subscription)
        self.confirmed = 0

    def route(self, pattern: str, listener: Listener) -> None:
        """Follow ``pattern`` for ``listener``; before :meth:`start` only."""
        if self._task is not None:
            raise RuntimeError("patterns are routed before the subscription starts")
        self._routes.setdefault(_raw(pattern), []).append(listener)

    async def start(self) -> None:
        """Start following (idempotent)."""
        if self._routes and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._follow(), name=f"{self.source} pub/sub")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_until_done([task], CLOSE_WAIT_S)

    def _listeners(self) -> list[Listener]:
        unique: dict[int, Listener] = {}
        for listeners in self._routes.values():
            unique.update((id(listener), listener) for listener in listeners)
        return list(unique.values())

    async def _follow(self) -> None:
        low, high = self.backoff_s
        delay = low
        while True:
            before = self.confirmed
            pubsub = self.client.pubsub()
            try:
                await self._listen(pubsub)
            except Exception as exc:  # a Redis error, or a bug: either way, subscribe again
                for listener in self._listeners():
                    listener.lost(exc)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_S):
                        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            if self.confirmed != before:
                delay = low  # it was subscribed for a while: start the backoff afresh
            await asyncio.sleep(delay)
            delay = min(delay * 2, high)

    async def _listen(self, pubsub: PubSub) -> None:
        """Subscribe each pattern by a command of its own (the ACL may refuse one and not
        the others: its listeners lose it, and it is asked for again after a wait while the
        rest are followed), then dispatch messages; returns only by an exception."""
        loop = asyncio.get_running_loop()
        low, high = self.backoff_s
        #: patterns asked for and not yet answered, in the order Redis answers them
        pending: deque[bytes] = deque()
        refused: list[bytes] = []
        delay, retry_at = low, 0.0
        for pattern in self._routes:
            await pubsub.psubscribe(pattern)
            pending.append(pattern)
        while True:
            if refused and loop.time() >= retry_at:
                for pattern in refused:
                    await pubsub.psubscribe(pattern)
                    pending.append(pattern)
                refused.clear()
            try:
                message = await pubsub.get_message(timeout=READ_WAIT_S)
            except redis.exceptions.NoPermissionError as exc:
                if not pending:
                    raise
                pattern = pending.popleft()
                pubsub.patterns.pop(pattern, None)  # not asked for again on a reconnection
                refused.append(pattern)
                retry_at, delay = loop.time() + delay, min(delay * 2, high)
                for listener in self._routes[pattern]:
                    listener.lost(exc)
                continue
            if message is None:
                continue
            if message.get("type") == "psubscribe" and pending:
                if pending[0] == _raw(message.get("channel")):
                    pending.popleft()
                    delay = low
            await self._dispatch(message)
            await asyncio.sleep(0)  # a flood of messages must not hold the loop

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "pmessage":
            for listener in self._routes.get(_raw(message.get("pattern")), ()):
                await listener.deliver(message.get("channel"), message.get("data"))
        elif kind == "psubscribe":  # its channel is the pattern confirmed
            self.confirmed += 1
            for listener in self._routes.get(_raw(message.get("channel")), ()):
                listener.subscribed()


def _raw(name: object) -> bytes:
    if isinstance(name, bytes):
        return name
    return str(name).encode("utf-8", "surrogateescape")


class Inbox(Generic[T]):
    """What a listener took from the subscription, for its own writer to take in batches
    (bounded: a writer a full queue behind holds the subscription's reader)."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)

    async def put(self, item: T) -> None:
        await self._queue.put(item)

    async def batch(self, most: int, wait_s: float) -> list[T]:
        """The next items: once one came, up to ``most`` of those that come within
        ``wait_s`` of it."""
        items = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while len(items) < most:
            try:
                items.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    items.append(await self._queue.get())
            except TimeoutError:
                break
        return items
