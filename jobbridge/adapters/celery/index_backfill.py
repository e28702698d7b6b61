"""The Celery result index's backfill: a slow, bounded, resumable ``SCAN`` of the result keys
for whatever the subscription missed (jobbridge was down, its connection dropped), and the
trims. Its cursor lives in Redis, so a restarted or another replica resumes it, and a lock
lets one replica run it at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis.exceptions

from jobbridge.adapters.celery.index_store import WriteCounts
from jobbridge.adapters.celery.index_summary import READ_BYTES, TAIL_BYTES, Entry, summarize
from jobbridge.adapters.fields import key_text, ms_to_datetime
from jobbridge.adapters.redis_errors import UNAVAILABLE_ERRORS
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from jobbridge.adapters.celery.index_store import IndexStore

log = logging.getLogger(__name__)

#: longest the backfill's own cleanup (releasing its lock) may take
CLEANUP_S = 1.0


@dataclass(slots=True, kw_only=True)
class BackfillReport:
    """What one backfill call did (updated as it goes: ``progress`` sees it live)."""

    #: this call got the lock and scanned
    ran: bool = False
    #: another replica holds the lock: nothing was done
    held_by_other: bool = False
    #: the pass reached the end of the keyspace
    completed: bool = False
    #: it continued a pass that an earlier run (of any replica) left unfinished
    resumed: bool = False
    #: the lock expired under it (a step took longer than its lifetime): it stopped
    lock_lost: bool = False
    #: result keys scanned by this call
    keys_seen: int = 0
    #: metas written, already indexed as new or newer, skipped for an operator's entry
    written: int = 0
    stale: int = 0
    operator: int = 0
    #: metas not indexed: unreadable, in no bucket, not a string, gone before read
    skipped: int = 0
    #: metas over READ_BYTES, indexed from their status and date only
    oversized: int = 0
    #: ids trimmed by the script calls of this pass
    trimmed: int = 0
    steps: int = 0
    seconds: float = 0.0
    #: the stored cursor when the call ended ("0": no pass in progress)
    cursor: str = "0"

    def add(self, counts: WriteCounts) -> None:
        self.written += counts.written
        self.stale += counts.stale
        self.operator += counts.operator
        self.trimmed += counts.trimmed
        self.skipped += counts.unknown


Progress = Callable[[BackfillReport], object]


@dataclass(slots=True)
class _PassState:
    """The stored progress of the backfill (``<base>backfill``)."""

    cursor: str = "0"
    pass_started_ms: int | None = None
    keys_seen: int = 0
    passes: int = 0
    last_pass_started_ms: int | None = None
    last_pass_ended_ms: int | None = None
    last_pass_s: float | None = None
    last_pass_keys: int = 0

    @property
    def in_progress(self) -> bool:
        return self.pass_started_ms is not None

    @classmethod
    def parse(cls, raw: Mapping[Any, Any]) -> _PassState:
        values = {key_text(k): key_text(v) for k, v in raw.items()}

        def number(name: str) -> int | None:
            text = values.get(name, "")
            return int(text) if text.isdigit() and len(text) < 20 else None

        try:
            last_s = float(values["last_pass_s"]) if values.get("last_pass_s") else None
        except ValueError:
            last_s = None
        started = number("pass_started_ms")
        cursor = values.get("cursor", "0")
        return cls(
            cursor=cursor if _is_cursor(cursor) and started is not None else "0",
            pass_started_ms=started,
            keys_seen=number("keys_seen") or 0,
            passes=number("passes") or 0,
            last_pass_started_ms=number("last_pass_started_ms"),
            last_pass_ended_ms=number("last_pass_ended_ms"),
            last_pass_s=last_s,
            last_pass_keys=number("last_pass_keys") or 0,
        )


def _is_cursor(text: str) -> bool:
    """Whether stored text can be a SCAN cursor (an unsigned 64-bit number)."""
    return text.isascii() and text.isdigit() and len(text) <= 20 and int(text) < 2**64


def _same(value: object, token: str) -> bool:
    return value == token or value == token.encode()


class Backfill:
    """The passes and trims of one index, and the loop that runs them when due."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self._wake = asyncio.Event()
        #: ms of the latest request for a pass not yet covered by a pass that started after it
        self._requested_ms: int | None = None
        self._next_trim_ms = 0
        self._maintain_outage = False
        #: a pass of this replica is under way
        self.backfilling = False

    def request(self) -> None:
        """Ask for a pass that starts from now (a pass already under way does not cover
        what it scanned before this)."""
        self._requested_ms = self.store.now_ms()
        self._wake.set()

    async def maintain_forever(self) -> None:
        low, high = self.store.settings.backoff_s
        delay = low
        while True:
            try:
                wait = await self._maintain_once()
                if self._maintain_outage:
                    log.warning("%s: result index maintenance back", self.store.source)
                self._maintain_outage = False
                delay = low
            except Exception as exc:  # a Redis error, or a bug: either way, try again later
                if not self._maintain_outage:
                    self._maintain_outage = True
                    log.warning(
                        "%s: result index backfill failed (%s)",
                        self.store.source,
                        exc,
                        exc_info=not isinstance(exc, UNAVAILABLE_ERRORS),
                    )
                wait, delay = delay, min(delay * 2, high)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            self._wake.clear()

    async def _maintain_once(self) -> float:
        """Trim if due, run a pass if due; seconds until something may be due again."""
        s = self.store.settings
        now = self.store.now_ms()
        if now >= self._next_trim_ms:
            await self.store.trim()
            self._next_trim_ms = now + int(s.trim_every_s * 1000)
        state = await self._read_state()
        if self._due(state, now):
            report = await self._pass(None, None)
            if not report.ran or report.lock_lost:
                return s.lock_retry_s
            state = await self._read_state()
            if self._due(state, self.store.now_ms()):
                return 0.0 if report.completed else s.lock_retry_s
        wait = s.trim_every_s
        if state.last_pass_ended_ms is not None:
            next_pass = state.last_pass_ended_ms + s.pass_interval_s * 1000
            wait = min(wait, max(0.0, (next_pass - self.store.now_ms()) / 1000))
        return max(wait, 0.05)

    def _due(self, state: _PassState, now: int) -> bool:
        if state.in_progress:
            return True
        if self._requested_ms is not None:
            if (state.last_pass_started_ms or 0) >= self._requested_ms:
                self._requested_ms = None  # a pass that started after the request has ended
            else:
                return True
        ended = state.last_pass_ended_ms
        return ended is None or now - ended >= self.store.settings.pass_interval_s * 1000

    async def _read_state(self) -> _PassState:
        raw = cast("dict[Any, Any]", await self.store.broker.hgetall(self.store.backfill_key))
        return _PassState.parse(raw)

    # ---- passes

    async def run(
        self, *, max_keys: int | None = None, progress: Progress | None = None
    ) -> BackfillReport:
        """Run a pass now, under the same lock as the background ones: continue the stored
        pass if one was left unfinished, else start one; stop early after ``max_keys`` keys
        (the cursor stays stored for the next pass to resume). When another replica holds
        the lock, nothing is done (``held_by_other``)."""
        return await self._pass(max_keys, progress)

    async def _pass(self, max_keys: int | None, progress: Progress | None) -> BackfillReport:
        token = secrets.token_hex(16)
        acquired = await self.store.broker.set(
            self.store.lock_key, token, nx=True, px=self.store.settings.lock_ttl_ms
        )
        if not acquired:
            return BackfillReport(held_by_other=True)
        self.backfilling = True
        try:
            return await self._scan(token, max_keys, progress)
        finally:
            self.backfilling = False
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLEANUP_S):
                    await self._release(token)

    async def _scan(
        self, token: str, max_keys: int | None, progress: Progress | None
    ) -> BackfillReport:
        started = time.monotonic()
        report = BackfillReport(ran=True)
        state = await self._read_state()
        if state.in_progress:
            report.resumed = True
            cursor, total = int(state.cursor), state.keys_seen
            pass_started = state.pass_started_ms or self.store.now_ms()
        else:
            cursor, pass_started, total = 0, self.store.now_ms(), 0
            fresh: dict[str, str | int] = {
                "cursor": 0,
                "pass_started_ms": pass_started,
                "keys_seen": 0,
            }
            if not await self._commit(token, fresh):
                report.lock_lost = True
                return report
        while True:
            cursor, found = cast(
                "tuple[int, list[bytes]]",
                await self.store.results.scan(
                    cursor=cursor, match=self.store.pattern, count=self.store.settings.scan_count
                ),
            )
            await self._index_keys(found, report)
            report.keys_seen += len(found)
            report.steps += 1
            total += len(found)
            report.seconds = time.monotonic() - started
            if cursor == 0:
                ended = self.store.now_ms()
                done: dict[str, str | int] = {
                    "cursor": 0,
                    "pass_started_ms": "",
                    "keys_seen": 0,
                    "last_pass_started_ms": pass_started,
                    "last_pass_ended_ms": ended,
                    "last_pass_s": f"{(ended - pass_started) / 1000:.3f}",
                    "last_pass_keys": total,
                    # only the lock's holder writes it: no increment needed (nor trusted)
                    "passes": state.passes + 1,
                }
                report.completed = await self._commit(token, done)
                report.lock_lost = not report.completed
                report.cursor = "0"
                break
            report.cursor = str(cursor)
            if not await self._commit(token, {"cursor": cursor, "keys_seen": total}):
                report.lock_lost = True
                break
            if progress is not None:
                progress(report)
            if max_keys is not None and report.keys_seen >= max_keys:
                break
            await asyncio.sleep(self.store.settings.step_sleep_s)
        if report.lock_lost:
            log.warning("%s: backfill lock lost after %d keys", self.store.source, report.keys_seen)
        report.seconds = time.monotonic() - started
        if progress is not None:
            progress(report)
        return report

    async def _index_keys(self, found: Sequence[bytes], report: BackfillReport) -> None:
        chunk = self.store.settings.read_chunk
        for start in range(0, len(found), chunk):
            entries = await self._read_metas(found[start : start + chunk], report)
            if entries:
                report.add(await self.store.write(entries))

    async def _read_metas(self, found: Sequence[bytes], report: BackfillReport) -> list[Entry]:
        """STRLEN and the first READ_BYTES of each key (never a huge value whole), the last
        TAIL_BYTES of those bigger; then their summaries, yielding to the loop as it goes."""
        names = [k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k for k in found]
        seen_ms = self.store.now_ms()
        pipe = self.store.results.pipeline(transaction=False)
        for name in names:
            pipe.strlen(name)
            pipe.getrange(name, 0, READ_BYTES - 1)
        replies = await pipe.execute(raise_on_error=False)
        sizes, heads = replies[0::2], replies[1::2]
        big = [i for i, size in enumerate(sizes) if isinstance(size, int) and size > READ_BYTES]
        tails: dict[int, object] = {}
        if big:
            pipe = self.store.results.pipeline(transaction=False)
            for i in big:
                pipe.getrange(names[i], -TAIL_BYTES, -1)
            tails = dict(zip(big, await pipe.execute(raise_on_error=False), strict=True))
        entries = []
        pacer = Pacer()
        for i, name in enumerate(names):
            entry = self._entry_of(name, sizes[i], heads[i], tails.get(i, b""), seen_ms, report)
            if entry is not None:
                entries.append(entry)
            await pacer.tick()
        return entries

    def _entry_of(
        self,
        name: bytes,
        size: object,
        head: object,
        tail: object,
        seen_ms: int,
        report: BackfillReport,
    ) -> Entry | None:
        if not name.startswith(self.store.meta_prefix) or len(name) == len(self.store.meta_prefix):
            reason = "a key that names no task"
        elif isinstance(size, Exception) or isinstance(head, Exception):
            reason = "not a string"
        elif not isinstance(size, int) or size == 0 or not isinstance(head, bytes | str):
            return None  # expired between SCAN and the read
        else:
            if isinstance(head, str):  # a client made with decode_responses
                head = head.encode("utf-8", "surrogateescape")
            task_id = name[len(self.store.meta_prefix) :]
            tail_bytes = tail if isinstance(tail, bytes) else b""
            entry = summarize(task_id, head, seen_ms=seen_ms, size=size, tail=tail_bytes)
            if isinstance(entry, Entry):
                report.oversized += size > READ_BYTES
                return entry
            reason = entry
        self.store.skip(name, reason)
        report.skipped += 1
        return None

    async def _commit(self, token: str, fields: Mapping[str, str | int]) -> bool:
        """Store the pass's progress and renew the lock, only while this token holds it."""
        async with self.store.broker.pipeline(transaction=True) as pipe:
            await pipe.watch(self.store.lock_key)
            if not _same(await pipe.get(self.store.lock_key), token):
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.pexpire(self.store.lock_key, self.store.settings.lock_ttl_ms)
            pipe.hset(self.store.backfill_key, mapping=dict[Any, Any](fields))
            try:
                await pipe.execute()
            except redis.exceptions.WatchError:
                return False
        return True

    async def _release(self, token: str) -> None:
        async with self.store.broker.pipeline(transaction=True) as pipe:
            await pipe.watch(self.store.lock_key)
            if _same(await pipe.get(self.store.lock_key), token):
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(self.store.lock_key)
                with contextlib.suppress(redis.exceptions.WatchError):
                    await pipe.execute()

    async def status(self) -> dict[str, object]:
        """The backfill's stored progress and this replica's part in it."""
        pipe = self.store.broker.pipeline(transaction=False)
        pipe.hgetall(self.store.backfill_key)
        pipe.pttl(self.store.lock_key)
        raw, lock_ttl = await pipe.execute()
        state = _PassState.parse(raw)

        def when(ms: int | None) -> str | None:
            moment = ms_to_datetime(ms)
            return moment.isoformat() if moment else None

        return {
            "cursor": state.cursor,
            "pass_in_progress": state.in_progress,
            "pass_started": when(state.pass_started_ms),
            "keys_seen": state.keys_seen,
            "passes": state.passes,
            "last_pass_started": when(state.last_pass_started_ms),
            "last_pass_ended": when(state.last_pass_ended_ms),
            "last_pass_s": state.last_pass_s,
            "last_pass_keys": state.last_pass_keys,
            "lock_held": isinstance(lock_ttl, int) and lock_ttl > 0,
            "backfilling_here": self.backfilling,
        }
