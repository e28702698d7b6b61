"""The priority lists a Celery broker holds, found from its keys, against the configured
``priority_steps``.

kombu keeps a queue's messages of priority step ``n`` in the list ``<queue><sep><n>`` (step 0
in ``<queue>`` itself). jobbridge reads the lists of the configured steps only, so an app
configured with other steps (``broker_transport_options={"priority_steps": ...}``) has
messages jobbridge neither counts nor lists. A bounded SCAN walk (in the background every
``PASS_INTERVAL_S``, and once in ``doctor``) finds every ``<queue><sep><n>`` list and says
when a step is not configured: in the counters' problems, in the log once, and in doctor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import redis.exceptions

from jobbridge.adapters.celery.keys import CeleryKeys
from jobbridge.adapters.fields import glob_escape, key_text
from jobbridge.adapters.values import ok

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: Keys one SCAN step asks for.
SCAN_COUNT = 5_000
#: Keys a doctor check looks at, at the most.
DOCTOR_SCAN_LIMIT = 200_000
#: Seconds between the end of one background pass and the start of the next.
PASS_INTERVAL_S = 30.0
#: Digits of a step kombu writes (its steps are small numbers; longer is not a step).
_MAX_STEP_DIGITS = 3
#: kombu's highest step (it clamps a priority into 0..9); a higher number is not its list
MAX_STEP = 9
#: Queues and steps one pass keeps at most (crafted keys cannot grow it without bound).
_MAX_FOUND = 1_000


def pattern(keys: CeleryKeys) -> str:
    """The SCAN pattern of every priority list (a step other than 0) under the prefix."""
    return glob_escape(keys.global_keyprefix) + "*" + glob_escape(keys.sep) + "*"


def parse(keys: CeleryKeys, key: bytes | str) -> tuple[str, int] | None:
    """(queue, step) of a priority list's key, None for another key."""
    text = key_text(key)
    if not text.startswith(keys.global_keyprefix):
        return None
    queue, sep, step = text[len(keys.global_keyprefix) :].rpartition(keys.sep)
    if not sep or not queue or not step.isascii() or not step.isdigit():
        return None
    if len(step) > _MAX_STEP_DIGITS:
        return None
    return queue, int(step)


def unconfigured(found: Mapping[str, set[int]], steps: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """The steps found per queue that the configured steps do not name."""
    configured = set(steps)
    result = {q: tuple(sorted(s - configured)) for q, s in sorted(found.items())}
    return {q: s for q, s in result.items() if s}


def describe(missing: Mapping[str, tuple[int, ...]], steps: Sequence[int]) -> str | None:
    """One line saying which lists are not read and what to change; None when all are."""
    if not missing:
        return None
    every = sorted({0, *steps, *(s for found in missing.values() for s in found)})
    shown = list(missing.items())[:5]
    lists = "; ".join(f"{q!r} steps {', '.join(map(str, s))}" for q, s in shown)
    more = f" and {len(missing) - len(shown)} more queues" if len(missing) > len(shown) else ""
    return (
        f"the broker holds priority lists the configured priority_steps {list(steps)} do not "
        f"name ({lists}{more}): their messages are not counted or listed; set the source's "
        f"priority_steps to the app's broker_transport_options priority_steps "
        f"(at least {every})"
    )


async def _lists(client: Redis, keys: CeleryKeys, found: Sequence[bytes | str]) -> list[str]:
    """The keys among ``found`` that parse as priority lists and hold a list."""
    candidates = [key_text(k) for k in found if parse(keys, k) is not None]
    if not candidates:
        return []
    pipe = client.pipeline(transaction=False)
    for key in candidates:
        pipe.type(key)
    replies = await pipe.execute(raise_on_error=False)
    return [
        key
        for key, reply in zip(candidates, replies, strict=True)
        if not isinstance(reply, Exception) and ok(reply) in (b"list", "list")
    ]


def _add(keys: CeleryKeys, found: dict[str, set[int]], listed: Sequence[str]) -> None:
    for key in listed:
        parsed = parse(keys, key)
        if parsed is None:
            continue
        queue, step = parsed
        if queue in found or len(found) < _MAX_FOUND:
            found.setdefault(queue, set()).add(step)


async def scan_once(
    client: Redis, keys: CeleryKeys, limit: int = DOCTOR_SCAN_LIMIT
) -> tuple[dict[str, set[int]], bool]:
    """The priority lists of a whole (bounded) walk, and whether it covered the keyspace."""
    found: dict[str, set[int]] = {}
    cursor, scanned = 0, 0
    while True:
        cursor, batch = await client.scan(cursor, match=pattern(keys), count=SCAN_COUNT)
        scanned += SCAN_COUNT
        _add(keys, found, await _lists(client, keys, batch))
        if int(cursor) == 0:
            return found, True
        if scanned >= limit:
            return found, False


async def check(client: Redis, keys: CeleryKeys) -> list[str]:
    """Doctor's lines about one source's priority lists (none when all are read)."""
    try:
        found, whole = await scan_once(client, keys)
    except redis.exceptions.NoPermissionError:
        return ["priority lists not checked: this Redis user may not SCAN or TYPE"]
    lines = []
    line = describe(unconfigured(found, keys.priority_steps), keys.priority_steps)
    if line:
        lines.append(line)
    if not whole:
        lines.append(f"priority lists: only the first {DOCTOR_SCAN_LIMIT} keys were looked at")
    return lines


class PriorityListWatch:
    """The background walk of one source (``CeleryAdapter.refresh_queues``), one SCAN step
    per call, a pass every ``PASS_INTERVAL_S``; ``problem`` says what the last pass found.

    With ``on_found`` (the source's steps are not configured) each pass hands it the steps
    found (kombu's 0..9), which the source then reads: nothing is missing, nothing to say.
    """

    def __init__(
        self,
        client: Redis,
        keys: CeleryKeys,
        *,
        source: str,
        on_found: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.source = source
        self.on_found = on_found
        self.cursor = 0
        self.passes = 0
        #: what the last complete pass found that the configured steps do not name
        self.missing: dict[str, tuple[int, ...]] = {}
        self._found: dict[str, set[int]] = {}
        self._pass_ended = float("-inf")
        self._logged: set[tuple[str, int]] = set()

    @property
    def problem(self) -> str | None:
        """The counters' problem line, None when every list found is read."""
        return describe(self.missing, self.keys.priority_steps)

    async def refresh(self) -> None:
        """One step, unless the last pass ended less than ``PASS_INTERVAL_S`` ago."""
        if self.cursor == 0 and time.monotonic() - self._pass_ended < PASS_INTERVAL_S:
            return
        await self.step()

    async def run(self, max_steps: int = DOCTOR_SCAN_LIMIT // SCAN_COUNT) -> None:
        """Steps until one pass completes (the CLI's one-shot reads)."""
        for _ in range(max_steps):
            await self.step()
            if self.cursor == 0:
                return

    async def step(self) -> None:
        """One bounded SCAN step (and TYPE of what it found); a pass ends at cursor 0."""
        try:
            cursor, batch = await self.client.scan(
                self.cursor, match=pattern(self.keys), count=SCAN_COUNT
            )
            listed = await _lists(self.client, self.keys, batch)
        except redis.exceptions.NoPermissionError:
            self.cursor, self._pass_ended = 0, time.monotonic()
            return
        _add(self.keys, self._found, listed)
        self.cursor = int(cursor)
        if self.cursor == 0:
            self.passes += 1
            self._pass_ended = time.monotonic()
            if self.on_found is not None:
                steps = {s for found in self._found.values() for s in found if s <= MAX_STEP}
                self.on_found(frozenset(steps))
            else:
                self.missing = unconfigured(self._found, self.keys.priority_steps)
            self._found = {}
            self._log_new()

    def _log_new(self) -> None:
        new = {(q, s) for q, steps in self.missing.items() for s in steps} - self._logged
        if new:
            self._logged |= new
            log.warning("source %s: %s", self.source, self.problem)
