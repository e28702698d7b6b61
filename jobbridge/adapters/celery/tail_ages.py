"""How long the oldest message of each Celery broker list has waited (docs/celery.md §4.5).

A kombu message carries no time it was sent, so the age comes from, best first:

1. the ``task-sent`` event of its task id (producers with ``task_send_sent_event``), followed
   on the source's subscription and remembered here (:class:`SentTimes`): exact;
2. the first time jobbridge saw the message at its list's oldest end (index -1: producers
   LPUSH, workers BRPOP), remembered by delivery tag in a hash under jobbridge's prefix that
   replicas share and restarts keep (:class:`TailAges`): a lower bound, since the message
   waited behind others before it reached the end.

A background step reads each list's tail (one ``LINDEX -1`` per list) and writes what it saw
with one script (``lua/ages/tail_seen.lua``); a counters read adds one ``LINDEX -1`` per list
the step found a message in and one ``HMGET`` of the step's tags to its pipeline, and never
writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from jobbridge import offload
from jobbridge.adapters.celery.messages import decode_message
from jobbridge.adapters.fields import key_text
from jobbridge.adapters.redis_errors import UNAVAILABLE_ERRORS
from jobbridge.adapters.stopping import cancel_until_done
from jobbridge.adapters.values import is_wrongtype, ok
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

log = logging.getLogger(__name__)

#: seconds between two background steps
STEP_S = 1.0
#: the remembered times expire this long after the last step of any replica
SEEN_TTL_S = 7 * 24 * 3600
#: fields the hash may hold beyond the tails of now before a step drops the others
PRUNE_SLACK = 1_000
#: task-sent times remembered (the least recently sent forgotten first): ~200 bytes each
SENT_REMEMBERED = 50_000
#: bytes of a tail decoded on the event loop; bigger ones in the decoding process
INLINE_BYTES = 64 * 1024
#: a tail bigger than this is not read again by a counters read (every read of every viewer
#: would move it): the step's view of it, at most STEP_S old, stands
REREAD_BYTES = 256 * 1024
#: characters of a decoding problem repeated in the counters' problems
PROBLEM_CHARS = 200
#: longest ``close`` waits for the step loop to stop
CLOSE_WAIT_S = 2.0

SCRIPT = (
    resources.files("jobbridge.adapters.celery") / "lua" / "ages" / "tail_seen.lua"
).read_text(encoding="utf-8")


class SentTimes:
    """Task id -> the ``task-sent`` time of its last message (ms), bounded, in memory: the
    event feed notes them, the tail step copies those of tails into Redis."""

    def __init__(self, most: int = SENT_REMEMBERED) -> None:
        self.most = most
        self._times: OrderedDict[str, int] = OrderedDict()

    def note(self, task_id: str, at_ms: int) -> None:
        self._times.pop(task_id, None)
        self._times[task_id] = at_ms
        while len(self._times) > self.most:
            self._times.popitem(last=False)

    def get(self, task_id: str | None) -> int | None:
        return self._times.get(task_id) if task_id else None

    def __len__(self) -> int:
        return len(self._times)


@dataclass(frozen=True, slots=True)
class Tail:
    """The message at a list's oldest end, as far as its age needs it."""

    #: digest of the exact bytes (a tail is decoded again only when they change)
    digest: bytes
    delivery_tag: str | None
    task_id: str | None
    #: why its wait cannot be timed; None when it can
    problem: str | None = None
    #: bytes of the message
    size: int = 0


def read_tail(raw: bytes, digest: bytes) -> Tail:
    """A tail's tag and task id (never raises: :func:`decode_message` does not)."""
    message = decode_message(raw)
    problem = None
    if not message.delivery_tag:
        why = (message.problem or "it has no delivery tag")[:PROBLEM_CHARS]
        problem = f"cannot be timed ({why})"
    return Tail(digest, message.delivery_tag, message.task_id, problem, len(raw))


@dataclass(frozen=True, slots=True)
class ListAge:
    """The wait of one list's oldest message."""

    #: seconds; None when the list is empty or the wait cannot be timed
    age_s: float | None
    #: the age is a lower bound (first seen by jobbridge), not the time it was sent
    at_least: bool = False
    problem: str | None = None


def remembered(value: object) -> tuple[int, bool] | None:
    """A field of the hash: (ms, exact); None when it is not one of ours."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or len(value) < 2 or len(value) > 20 or value[0] not in "fs":
        return None
    digits = value[1:]
    if not digits.isdigit() or not digits.isascii():
        return None
    return int(digits), value[0] == "s"


#: a tail the background step has not seen yet (it runs every STEP_S, and a request never
#: writes): its wait is at least nothing, which keeps the column sortable instead of blank
NOT_SEEN_YET = ListAge(0.0, at_least=True)


@dataclass(slots=True)
class ReadPlan:
    """What a counters pipeline was given: the lists read, then the tags asked for."""

    lists: tuple[str, ...]
    tags: tuple[str, ...]
    #: lists whose big tail is taken as the step saw it (not read again)
    kept: tuple[str, ...] = ()

    @property
    def replies(self) -> int:
        return len(self.lists) + (1 if self.tags else 0)


class TailAges:
    """The tail sampler of one Celery source and the reads of its remembered times.

    Args:
        client: the broker's Redis (the hash lives there too).
        key: the hash of remembered times (under the source's jobbridge prefix).
        lists: the broker lists to follow, as of now (every priority list of every queue).
        sent: the task-sent times the event feed notes.
        source: the source's name, for logs.
        clock: Unix seconds (tests move it).
    """

    def __init__(
        self,
        client: Redis,
        *,
        key: str,
        lists: Callable[[], Sequence[str]],
        sent: SentTimes,
        source: str,
        clock: Callable[[], float] = time.time,
        step_s: float = STEP_S,
    ) -> None:
        self.client = client
        self.key = key
        self.lists = lists
        self.sent = sent
        self.source = source
        self.clock = clock
        self.step_s = step_s
        self._script = client.register_script(SCRIPT)
        #: list -> its tail as the last step saw it
        self.tails: dict[str, Tail] = {}
        #: why the last step could not write (the hash is not one), shown by the counters
        self.problem: str | None = None
        #: steps run, for tests and benchmarks
        self.steps = 0
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    # ------------------------------------------------------------ background

    async def start(self) -> None:
        """Start stepping (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"{self.source} tail ages")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_until_done([task], CLOSE_WAIT_S)

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
                if self._failing:
                    log.warning("%s: oldest-message sampling works again", self.source)
                self._failing = False
            except Exception as exc:  # Redis down, or a bug: try again next step
                if not self._failing:
                    log.warning(
                        "%s: oldest-message sampling failed (%s); retrying quietly",
                        self.source,
                        exc,
                        exc_info=not isinstance(exc, UNAVAILABLE_ERRORS),
                    )
                self._failing = True
            await asyncio.sleep(self.step_s)

    async def step(self) -> None:
        """One step: ``LINDEX -1`` of every list (one pipeline), then one script call that
        remembers the new tails and forgets the departed ones."""
        lists = tuple(self.lists())
        pipe = self.client.pipeline(transaction=False)
        for name in lists:
            pipe.lindex(name, -1)
        replies = await pipe.execute(raise_on_error=False) if lists else []
        tails: dict[str, Tail] = {}
        pacer = Pacer()
        for name, reply in zip(lists, replies, strict=True):
            tail = await self._tail(self.tails.get(name), ok(reply))
            if tail is not None:
                tails[name] = tail
            await pacer.tick()
        now_ms = int(self.clock() * 1000)
        current: dict[str, str] = {}
        for tail in tails.values():
            if tail.delivery_tag and tail.problem is None:
                sent = self.sent.get(tail.task_id)
                # one tag at two tails (a hostile copy): the sent time, if any, wins
                if current.get(tail.delivery_tag, "") == "":
                    current[tail.delivery_tag] = "" if sent is None else str(sent)
        before = {t.delivery_tag for t in self.tails.values() if t.delivery_tag}
        gone = sorted(before - current.keys())
        argv: list[Any] = [now_ms, SEEN_TTL_S, len(current) + PRUNE_SLACK, len(current)]
        for tag, sent_text in current.items():
            argv += [tag, sent_text]
        argv += gone
        result = await self._script(keys=[self.key], args=argv)
        self.problem = None
        if isinstance(result, list) and result and result[0] == -1:
            kind = key_text(result[1]) if len(result) > 1 else "?"
            self.problem = (
                f"{self.key!r} is a {kind}, not jobbridge's hash of first-seen times: the "
                "oldest waiting ages are not remembered"
            )
        self.tails = tails
        self.steps += 1

    async def _tail(self, known: Tail | None, raw: object) -> Tail | None:
        """The tail of one reply; the known one when its bytes did not change."""
        if not isinstance(raw, bytes):
            return None  # empty, or not a list (the counters say so)
        digest = await offload.digest(raw)
        if known is not None and known.digest == digest:
            return known
        return await offload.decode(read_tail, raw, digest, inline_bytes=INLINE_BYTES)

    # ------------------------------------------------------------ counters reads

    def queue_reads(self, pipe: Pipeline, lists: Sequence[str]) -> ReadPlan:
        """Queue ``LINDEX -1`` of each list the last step found a message in, then one
        ``HMGET`` of the tags it saw at those tails, on a caller's pipeline. A list the step
        found empty is not read: a message there now is one the step has not seen (see
        :data:`NOT_SEEN_YET`), and most deployments leave most priority lists empty."""
        lists = [name for name in lists if name in self.tails]
        for name in lists:
            if self.tails[name].size <= REREAD_BYTES:
                pipe.lindex(name, -1)
        reread = tuple(name for name in lists if self.tails[name].size <= REREAD_BYTES)
        tags = tuple(
            dict.fromkeys(
                t.delivery_tag
                for name in lists
                if (t := self.tails.get(name)) is not None and t.delivery_tag
            )
        )
        if tags:
            pipe.hmget(self.key, list(tags))
        return ReadPlan(reread, tags, tuple(name for name in lists if name not in reread))

    async def take_reads(
        self, plan: ReadPlan, replies: Sequence[object], now_ms: int
    ) -> dict[str, ListAge]:
        """Those replies, as the age of each non-empty list's oldest message."""
        found: dict[str, tuple[int, bool]] = {}
        if plan.tags:
            values = ok(replies[len(plan.lists)])
            if isinstance(values, list):
                for tag, value in zip(plan.tags, values, strict=False):
                    got = remembered(value)
                    if got is not None:
                        found[tag] = got
        ages: dict[str, ListAge] = {}
        pacer = Pacer()
        for name, reply in zip(plan.lists, replies, strict=False):
            await pacer.tick()
            raw = ok(reply)
            if is_wrongtype(raw) or not isinstance(raw, bytes):
                continue  # empty, or not a list (the counters say so)
            tail = await self._tail(self.tails.get(name), raw)
            if tail is None:
                continue
            ages[name] = self._age(tail, found, now_ms)
        for name in plan.kept:
            ages[name] = self._age(self.tails[name], found, now_ms)
        return ages

    def not_seen(self) -> ListAge:
        """The age of a list's oldest message the background step has not seen yet."""
        return NOT_SEEN_YET

    def _age(self, tail: Tail, found: dict[str, tuple[int, bool]], now_ms: int) -> ListAge:
        if tail.problem is not None or not tail.delivery_tag:
            return ListAge(None, problem=tail.problem or "has no delivery tag")
        sent = self.sent.get(tail.task_id)
        if sent is not None:
            return ListAge(max(0, now_ms - sent) / 1000)
        held = found.get(tail.delivery_tag)
        if held is None:
            return NOT_SEEN_YET
        at_ms, exact = held
        return ListAge(max(0, now_ms - at_ms) / 1000, at_least=not exact)
