"""Autumn's completed and dead lists, followed incrementally, and the identity of their entries.

An entry is known by its bytes: it shows under the id it records only when an action on that
id acts on exactly that entry (docs/autumn.md §6), else under the digest of its bytes
(``entry:<hex>``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import redis.exceptions

from jobbridge import offload
from jobbridge.adapters.autumn import records
from jobbridge.adapters.autumn.keys import AutumnKeys, entry_digest, entry_id
from jobbridge.adapters.autumn.list_history import (
    Entry,
    ListChanged,
    ListHistory,
    RowCache,
    Window,
    window_of,
)
from jobbridge.adapters.fields import ms_to_datetime
from jobbridge.adapters.values import MAX_VALUE_BYTES, Value, is_wrongtype, megabytes, ok
from jobbridge.adapters.values import read_strings as _read_strings
from jobbridge.model import (
    COMPLETED_WINDOW,
    FAILED_WINDOW,
    Action,
    JobRecord,
    JobStatus,
    ListName,
)
from jobbridge.pacing import Pacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Autumn's DEFAULT_JOB_ADMIN_HISTORY_LIMIT: completed and dead are trimmed to this
HISTORY_LIMIT = 1000
#: Tries of a read by position when the list moves under it.
READ_TRIES = 3
#: A lookup that finds its entry in histories brought up to date this recently uses them as
#: they are (opening the rows of a page just shown probes nothing); others probe first.
LOOKUP_SYNC_AGE_S = 0.5
#: Bytes of history entries (and their dead-records) one page reads at most; rows past it say
#: so, with what the summary knows, and link to the entry.
PAGE_BYTES = 16 * 1024 * 1024
#: An entry this small is read even past the page budget.
SMALL_ENTRY_BYTES = 64 * 1024
#: Decoded history rows kept across reads, for all Autumn sources of the process together.
ROW_CACHE_BYTES = 32 * 1024 * 1024

_ROWS: RowCache[JobRecord] = RowCache(ROW_CACHE_BYTES)

STATUS: dict[ListName, tuple[JobStatus, str]] = {
    ListName.COMPLETED: (JobStatus.COMPLETED, records.RAW_COMPLETED),
    ListName.FAILED: (JobStatus.FAILED, records.RAW_DEAD),
}
_WINDOWS = {ListName.COMPLETED: COMPLETED_WINDOW, ListName.FAILED: FAILED_WINDOW}

Summary = records.HistorySummary
#: where the summary's fields sit in the plain tuples the rows store
_TIME, _FLAGGED, _RECORDED = (
    Summary._fields.index(name) for name in ("time_ms", "flagged", "recorded_id")
)


@dataclass(slots=True)
class _View:
    """What one version of a history list gives a read: its window order and indexes."""

    version: int
    window: Window
    #: positions of the entries recording each usable id, newest first
    by_recorded: dict[str, tuple[int, ...]]
    #: first position of each digest
    by_digest: dict[bytes, int]


@dataclass(frozen=True, slots=True)
class Found:
    """A history entry located for a lookup or an action, with its exact bytes."""

    which: ListName
    entry: Entry[Summary]
    raw: bytes


async def _summarize(raw: bytes) -> Summary:
    return await offload.decode(records.summarize, raw)


class AutumnHistories:
    """The completed and dead lists of one Autumn source, as jobbridge follows them.

    Their state moves only under ``lock``: a read that probes them (counters, a snapshot, a
    lookup) holds it from the probe to the last row read by position.
    """

    def __init__(self, client: Redis, source: str, keys: AutumnKeys) -> None:
        self.client = client
        self.source = source
        self.keys = keys
        self.lists: dict[ListName, ListHistory[Summary]] = {
            ListName.COMPLETED: ListHistory(
                keys.completed, HISTORY_LIMIT, _summarize, Summary._make
            ),
            ListName.FAILED: ListHistory(keys.dead, HISTORY_LIMIT, _summarize, Summary._make),
        }
        self._views: dict[ListName, _View] = {}
        self._synced_at = float("-inf")
        self.lock = asyncio.Lock()

    # ------------------------------------------------------------------ following

    def probe(self, pipe: Any) -> None:
        """Queue both lists' probes on a pipeline (six replies, for :meth:`update`)."""
        for history in self.lists.values():
            ListHistory.probe(pipe, history.key)

    async def update(self, replies: Sequence[object], broken: dict[str, str]) -> None:
        """Bring both lists up to date from their probes' replies; a list whose key is not a
        list goes into ``broken`` (key -> "list") and is known as empty."""
        for index, history in enumerate(self.lists.values()):
            length, head, tail = replies[3 * index : 3 * index + 3]
            if any(is_wrongtype(r) for r in (length, head, tail)):
                broken[history.key] = "list"
                history.forget()
                continue
            try:
                await history.update(self.client, int(ok(length)), ok(head), ok(tail))
            except redis.exceptions.ResponseError as exc:
                if not is_wrongtype(exc):
                    raise
                # The key changed type between the probe and the read.
                broken[history.key] = "list"
                history.forget()
        self._synced_at = time.monotonic()

    async def resync(self, max_age_s: float = 0.0) -> None:
        """Probe again and bring both lists up to date, unless that was done less than
        ``max_age_s`` ago. Call under the lock."""
        if time.monotonic() - self._synced_at <= max_age_s:
            return
        pipe = self.client.pipeline(transaction=False)
        self.probe(pipe)
        await self.update(await pipe.execute(raise_on_error=False), {})

    def view(self, which: ListName) -> _View:
        """The window order and indexes of a list's current version (computed once)."""
        history = self.lists[which]
        view = self._views.get(which)
        if view is not None and view.version == history.version:
            return view
        # Straight from the stored rows (digest, size, summary as a plain tuple): building an
        # Entry for each of a thousand rows would cost milliseconds here.
        rows = history.entries.rows
        by_recorded: dict[str, list[int]] = {}
        by_digest: dict[bytes, int] = {}
        for position, (digest, _, summary) in enumerate(rows):
            recorded = summary[_RECORDED]
            if recorded is not None:
                by_recorded.setdefault(recorded, []).append(position)
            by_digest.setdefault(digest, position)
        view = _View(
            version=history.version,
            window=window_of([r[2][_TIME] for r in rows], [r[2][_FLAGGED] for r in rows]),
            # tuples of ints: the garbage collector stops tracking them
            by_recorded={k: tuple(v) for k, v in by_recorded.items()},
            by_digest=by_digest,
        )
        self._views[which] = view
        return view

    def in_window(self, which: ListName, now_ms: int) -> int:
        """Entries of the last 24 h (completed) or 7 days (failed), as Autumn counts them."""
        cutoff = now_ms - int(_WINDOWS[which].total_seconds() * 1000)
        return self.view(which).window.count_since(cutoff)

    # ------------------------------------------------------------------ pages

    async def page_rows(
        self, which: ListName, start: int, size: int, now_ms: int
    ) -> tuple[list[JobRecord], int]:
        """The rows of one page of a list's window, and the window's total. Under the lock."""
        if size <= 0:
            return [], self.in_window(which, now_ms)
        for _ in range(READ_TRIES):
            total = self.in_window(which, now_ms)
            positions = list(self.view(which).window.order[start : min(start + size, total)])
            try:
                return await self._rows(which, positions), total
            except ListChanged:
                await self.resync()
        # The list kept moving under a busy worker: show what the summaries know.
        reason = "the list kept changing while it was read"
        return [self._summary_row(which, p, reason) for p in positions], total

    async def _rows(self, which: ListName, positions: Sequence[int]) -> list[JobRecord]:
        """Rows of the entries at these positions, under the identity each one earns.

        Entries decoded before come from the row cache; others are read by position while the
        page's byte budget lasts, and so are the dead-records a failed entry's identity needs.
        """
        history = self.lists[which]
        entries = history.entries
        dead = which is ListName.FAILED
        budget = PAGE_BYTES
        to_read: list[int] = []
        checks: list[int] = []
        too_big: set[int] = set()
        for position in positions:
            entry = entries[position]
            cached = _ROWS.get(self._row_key(which, entry)) is not None
            check = dead and entry.summary.recorded_id is not None
            cost = (0 if cached else entry.size) + (entry.size if check else 0)
            if cost > budget and cost > SMALL_ENTRY_BYTES:
                too_big.add(position)
                continue
            budget -= cost
            if not cached:
                to_read.append(position)
            if check:
                checks.append(position)

        def queue_checks(pipe: Any) -> None:
            for position in checks:
                recorded = entries[position].summary.recorded_id
                assert recorded is not None
                pipe.get(self.keys.dead_record(recorded))

        raws, replies = await history.read_at(self.client, to_read, queue_checks)
        fetched = dict(zip(to_read, raws, strict=True))
        dead_records = {
            position: None if is_wrongtype(reply) else reply
            for position, reply in zip(checks, map(ok, replies), strict=True)
        }
        rows = []
        pacer = Pacer()
        for position in positions:
            entry = entries[position]
            if position in too_big:
                reason = (
                    f"the entry ({megabytes(entry.size)}) is too large to read with this "
                    "page; open it to see it"
                )
                rows.append(self._summary_row(which, position, reason))
                continue
            row = await self._decoded_row(which, entry, fetched.get(position))
            identity, problem = await self.identity(
                which, entry, dead_records.get(position), checked=position in dead_records
            )
            rows.append(as_identity(row, identity, problem, dead))
            await pacer.tick()
        return rows

    def _row_key(self, which: ListName, entry: Entry[Summary]) -> tuple[Any, ...]:
        return (self.source, self.keys.prefix, which.value, entry.digest)

    async def _decoded_row(
        self, which: ListName, entry: Entry[Summary], raw: bytes | None
    ) -> JobRecord:
        key = self._row_key(which, entry)
        row = _ROWS.get(key)
        if row is None:
            assert raw is not None
            status, raw_status = STATUS[which]
            row = await offload.decode(
                records.history_row, raw, self.source, "", status, raw_status
            )
            _ROWS.put(key, row, _row_size(row))
        return row

    def _summary_row(self, which: ListName, position: int, reason: str) -> JobRecord:
        entry = self.lists[which].entries[position]
        status, raw_status = STATUS[which]
        recorded = entry.summary.recorded_id
        return JobRecord(
            source=self.source,
            system="autumn",
            id=entry_id(entry.digest),
            name="",
            queue="",
            status=status,
            raw_status=raw_status,
            finished_at=ms_to_datetime(entry.summary.time_ms),
            problem=f"not read: {reason}",
            extra={"recorded_id": recorded} if recorded else {},
        )

    # ------------------------------------------------------------------ identity

    async def identity(
        self,
        which: ListName,
        entry: Entry[Summary],
        dead_record: object,
        *,
        checked: bool,
    ) -> tuple[str, str | None]:
        """The id an entry is shown and acted on by, and why that is not the id it records.

        Args:
            which: the list the entry is in.
            entry: the entry.
            dead_record: the bytes of ``dead-record:<recorded id>`` (None when missing).
            checked: whether ``dead_record`` was read (failed entries only).
        """
        recorded = entry.summary.recorded_id
        if recorded is None:
            return entry_id(entry.digest), (
                "the entry names no usable job id; it is known by the digest of its bytes"
            )
        if which is ListName.COMPLETED:
            return recorded, None
        if checked and isinstance(dead_record, bytes):
            if await offload.digest(dead_record) == entry.digest:
                return recorded, None
            return entry_id(entry.digest), (
                f"the entry names job {recorded}, whose failed record is another entry; "
                "it is known by the digest of its bytes"
            )
        if len(self.view(which).by_recorded.get(recorded, ())) > 1:
            return entry_id(entry.digest), (
                f"several failed entries name job {recorded}; each is known by the digest "
                "of its bytes"
            )
        if entry.summary.malformed:
            return recorded, None
        return recorded, "it has no failed record of its own, which Autumn's retry needs"

    # ------------------------------------------------------------------ lookups

    def _locate(self, job_id: str, which: ListName | None) -> tuple[ListName, int] | None:
        """Where an entry is, by its entry id or by the id it records (the newest such)."""
        digest = entry_digest(job_id)
        for name in (which,) if which is not None else tuple(self.lists):
            view = self.view(name)
            if digest is not None:
                position = view.by_digest.get(digest)
            else:
                position = next(iter(view.by_recorded.get(job_id, ())), None)
            if position is not None:
                return name, position
        return None

    async def _read_entry(self, which: ListName, entry: Entry[Summary]) -> bytes | None:
        """The exact bytes of a known entry (None when it left the list meanwhile)."""
        for _ in range(READ_TRIES):
            position = self.view(which).by_digest.get(entry.digest)
            if position is None:
                return None
            try:
                raws, _ = await self.lists[which].read_at(self.client, [position])
            except ListChanged:
                await self.resync()
                continue
            return raws[0]
        return None

    async def find(self, job_id: str) -> tuple[Found, str, str | None] | None:
        """A completed or failed entry by its entry id or the id it records, with the id it
        is shown by and why that is not its own (for a job page)."""
        async with self.lock:
            await self.resync(LOOKUP_SYNC_AGE_S)
            located = self._locate(job_id, None)
            if located is None:
                # Not in what a moment ago knew: look at the lists as they are now.
                await self.resync()
                located = self._locate(job_id, None)
            if located is None:
                return None
            which, position = located
            entry = self.lists[which].entries[position]
            raw = await self._read_entry(which, entry)
            if raw is None:
                return None
            recorded = entry.summary.recorded_id
            dead_record: Value = None
            checked = which is ListName.FAILED
            if checked and recorded is not None and entry_digest(job_id) is not None:
                # Found by its bytes: does the id it records act on it? (Looked up by that
                # id, its dead-record was already found missing.)
                (dead_record,) = await _read_strings(
                    self.client, [self.keys.dead_record(recorded)], MAX_VALUE_BYTES, 0
                )
            identity, problem = await self.identity(which, entry, dead_record, checked=checked)
        return Found(which, entry, raw), identity, problem

    async def failed_entry(self, job_id: str) -> tuple[int, Found | None]:
        """For an id with no dead-record (an action): how many failed entries it names, and
        the one it names when that is exactly one. Probes first."""
        async with self.lock:
            await self.resync()
            digest = entry_digest(job_id)
            view = self.view(ListName.FAILED)
            if digest is not None:
                count = 1 if digest in view.by_digest else 0
            else:
                count = len(view.by_recorded.get(job_id, ()))
            located = self._locate(job_id, ListName.FAILED) if count == 1 else None
            if located is None:
                return count, None
            entry = self.lists[ListName.FAILED].entries[located[1]]
            raw = await self._read_entry(ListName.FAILED, entry)
            return count, None if raw is None else Found(ListName.FAILED, entry, raw)


def _row_size(row: JobRecord) -> int:
    """A rough count of the bytes a cached row holds."""
    return 600 + len(row.last_error or "") + len(row.payload_preview) + len(row.problem or "")


def as_identity(row: JobRecord, identity: str, problem: str | None, dead: bool) -> JobRecord:
    """A decoded history row under the id decided for it, with its actions."""
    actions = row.actions
    if dead and problem is not None:
        # Not its own failed record: Autumn's retry cannot take it; discard can.
        actions = (Action.DISCARD,)
    problems = [p for p in (row.problem, problem) if p]
    return replace(
        row, id=identity, actions=actions, problem="; ".join(problems) if problems else None
    )
