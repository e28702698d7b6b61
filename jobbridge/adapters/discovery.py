"""Queue discovery: a resumable walk over the keys that name a system's queues, one bounded
step at a time, in the background (never per request).

A system gives one step: from a cursor, the next cursor and the queue names found (a
``SCAN MATCH`` step over its queue keys, an ``SSCAN`` step over a set of them ...). This
module keeps the cursor, the names and the passes. Names are shown default queue first.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

#: Queue names one discovery pass keeps at most.
MAX_DISCOVERED = 10_000

#: cursor -> (next cursor, queue names found); 0 starts and ends a pass
Step = Callable[[int], Awaitable[tuple[int, Iterable[str]]]]


class DiscoveryProblem(Exception):
    """A step could not read what names the queues (a key of another type): the words say
    which; the walk starts over at the next step and the last names stay."""


class QueueDiscovery:
    """The queues one source's steps have found.

    Two ways to forget a queue, by what the system keeps of an empty one:

    - ``keep_s`` None: each completed pass replaces the names (an RQ queue stays in its set,
      a Celery queue keeps its binding, when empty), the default queue until the first;
    - ``keep_s`` set: a queue shows from the step that finds it until a whole pass has not
      seen it and ``keep_s`` has passed (an empty Autumn queue's key does not exist, so it
      may come back); ``pinned`` names are never forgotten.
    """

    def __init__(
        self,
        step: Step,
        *,
        default: str,
        limit: int | None = MAX_DISCOVERED,
        keep_s: float | None = None,
        pinned: Iterable[str] = (),
        pass_interval_s: float = 0.0,
    ) -> None:
        """Bind the walk to a system's step.

        Args:
            step: one bounded step of the walk.
            default: the queue a system sends to unless told otherwise (shown first).
            limit: names one pass keeps at most, None for no cap; the others are only
                counted (``total``). ``keep_s`` None only.
            keep_s: see the class; None replaces the names at the end of each pass.
            pinned: names always shown (``keep_s`` only).
            pass_interval_s: seconds ``refresh`` rests between the end of a pass and the
                start of the next.
        """
        self._step = step
        self.default = default
        self.limit = limit
        self.keep_s = keep_s
        self.pass_interval_s = pass_interval_s
        self.cursor = 0
        #: completed passes over the keyspace
        self.passes = 0
        #: why the last step could not read (``DiscoveryProblem``); None when it could
        self.problem: str | None = None
        #: name -> when a step last found it (monotonic seconds; pinned: inf)
        self._seen: dict[str, float] = dict.fromkeys(pinned, float("inf"))
        self._names: tuple[str, ...] = (default,) if keep_s is None else ()
        self._total = len(self._names)
        #: names found by the pass under way (``keep_s`` None), and how many in all
        self._pass: set[str] = set()
        self._pass_total = 0
        self._pass_started = time.monotonic()
        self._pass_ended = float("-inf")

    @property
    def names(self) -> tuple[str, ...]:
        """The queues found, the default first, then by name."""
        if self.keep_s is None:
            return self._names
        return _ordered(self._seen, self.default)

    @property
    def total(self) -> int:
        """How many queues the last pass found, counting those past ``limit``."""
        return self._total if self.keep_s is None else len(self._seen)

    def __contains__(self, name: object) -> bool:
        return name in (self._names if self.keep_s is None else self._seen)

    def forget(self, name: str) -> None:
        """Stop showing a queue whose key turned out to be no queue (not a pinned one)."""
        if self._seen.get(name) != float("inf"):
            self._seen.pop(name, None)

    async def step(self) -> None:
        """One step of the walk; the last step of a pass ends it."""
        try:
            cursor, found = await self._step(self.cursor)
        except DiscoveryProblem as exc:
            self.problem = str(exc)
            self.cursor = 0
            return
        self.problem = None
        self._take(found)
        self.cursor = int(cursor)
        if self.cursor == 0:
            self._end_pass()

    async def refresh(self) -> None:
        """A step, unless a pass ended less than ``pass_interval_s`` ago (the background)."""
        if self.cursor == 0 and time.monotonic() - self._pass_ended < self.pass_interval_s:
            return
        await self.step()

    async def run(self, max_steps: int = 10_000) -> None:
        """Steps until one full pass completes, a step cannot read, or ``max_steps``."""
        passes = self.passes
        for _ in range(max_steps):
            await self.step()
            if self.passes > passes or self.problem:
                return

    def _take(self, found: Iterable[str]) -> None:
        if self.keep_s is not None:
            now = time.monotonic()
            for name in found:
                self._seen[name] = now
            return
        for name in found:
            if name in self._pass:
                continue
            self._pass_total += 1
            if self.limit is None or len(self._pass) < self.limit:
                self._pass.add(name)

    def _end_pass(self) -> None:
        now = time.monotonic()
        if self.keep_s is None:
            self._names = _ordered(self._pass, self.default) or (self.default,)
            self._total = max(self._pass_total, len(self._names))
            self._pass = set()
            self._pass_total = 0
        else:
            for name, seen in list(self._seen.items()):
                if seen < self._pass_started and now - seen > self.keep_s:
                    del self._seen[name]
        self._pass_started = now
        self._pass_ended = now
        self.passes += 1


def _ordered(names: Iterable[str], default: str) -> tuple[str, ...]:
    return tuple(sorted(names, key=lambda q: (q != default, q)))
