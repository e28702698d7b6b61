"""Identical reads that arrive close together share one Redis round trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Coalescer:
    """Share one in-flight or recent result among identical callers.

    A result is reused for ``ttl_s`` seconds after it arrives; an exception is handed to every
    caller that was waiting for it and is not kept. At most ``max_entries`` finished results
    are kept (the oldest go first), and expired ones are dropped a moment after they expire,
    idle or not: however many distinct queries viewers send, memory stays bounded.
    """

    def __init__(self, ttl_s: float, max_entries: int = 64) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        #: how many calls reached Redis (for tests and /metrics)
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None:
            expires, future = entry
            if not future.done() or now < expires:
                result: T = await asyncio.shield(future)
                return result
            del self._entries[key]
        self.misses += 1
        future = asyncio.get_running_loop().create_future()
        self._entries[key] = (float("inf"), future)
        try:
            value = await load()
        except BaseException as exc:
            if self._entries.get(key, (0, None))[1] is future:
                del self._entries[key]
            future.set_exception(exc)
            # Waiters get it; mark it retrieved so asyncio does not warn when there are none.
            future.exception()
            raise
        future.set_result(value)
        if self._entries.get(key, (0, None))[1] is future:
            if self.ttl_s > 0:
                # Re-inserted, so the dict's order is the order results arrived in.
                del self._entries[key]
                self._entries[key] = (time.monotonic() + self.ttl_s, future)
                self._trim()
            else:
                del self._entries[key]
        return value

    def _trim(self) -> None:
        """Drop expired results, then the oldest finished ones beyond ``max_entries``."""
        now = time.monotonic()
        finished = [k for k, (expires, f) in self._entries.items() if f.done()]
        for key in finished:
            if self._entries[key][0] <= now:
                del self._entries[key]
        excess = len(self._entries) - self.max_entries
        for key in finished:
            if excess <= 0:
                break
            if key in self._entries:
                del self._entries[key]
                excess -= 1
        if self._sweep is None and self._entries:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_later(self.ttl_s + 0.05, self._swept)

    def _swept(self) -> None:
        self._sweep = None
        self._trim()

    def invalidate(self, prefix: Hashable | None = None) -> None:
        """Forget finished results (of keys starting with ``prefix`` when given)."""
        for key, (_, future) in list(self._entries.items()):
            if not future.done():
                continue
            if prefix is None or (isinstance(key, tuple) and key[:1] == (prefix,)):
                del self._entries[key]
