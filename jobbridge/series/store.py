"""The chart series of one source in Redis, under jobbridge's prefix of the source.

Keys (``<prefix>series:<source>:…``; docs/operations.md, "Chart series"):

- ``1h`` and ``24h``: hashes of the source's points: ``c:<step start>`` completed,
  ``f:<step start>`` failed, ``e:<step start>`` the step's last depth sample, ``since`` and
  ``trim`` (see lua/write.lua); ``1h:q:<queue>`` and ``24h:q:<queue>`` the same per queue;
- ``lease``: the token of the replica that writes (SET NX PX, renewed each step);
- ``cursor``: where the source's finished-job feed reads on from;
- ``seen``: ``<id>:<finish ms>`` of each job counted, scored by finish time, so a job read
  twice is counted once.

Every key expires ``TTL_S`` after the last write and the hashes keep one window of steps, so
a source no longer followed leaves nothing behind for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from jobbridge.leases import Lease
from jobbridge.lua_text import lua_text
from jobbridge.series.model import POINTS, STEP_S, Series, SeriesPoint, Window

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.finished import FinishedJob

#: seconds every series key lives after its last write: a day's window and an hour's slack
TTL_S = 25 * 3600
#: the queues of one source that get series of their own, at most
MAX_QUEUES = 50
#: field names of the windows' hashes in the key (must match lua/write.lua's order)
WINDOWS = (Window.HOUR, Window.DAY)


def script(name: str) -> str:
    """The text of ``series/lua/<name>.lua``, as shipped."""
    return lua_text("jobbridge.series", name)


#: the write script's refusals
LEASE_LOST = -1
STALE_CURSOR = -2


class SeriesStore:
    """One source's series keys on its Redis: the writes of the follower and the reads of
    the service."""

    def __init__(self, client: Redis, prefix: str, source: str) -> None:
        self.client = client
        self.source = source
        self.base = f"{prefix}series:{source}:"
        self._write = client.register_script(script("write"))
        self._lease = Lease(client, self.lease_key)

    # ------------------------------------------------------------------ keys

    def points_key(self, window: Window, queue: str | None = None) -> str:
        return f"{self.base}{window.value}" + (f":q:{queue}" if queue is not None else "")

    @property
    def lease_key(self) -> str:
        return f"{self.base}lease"

    @property
    def cursor_key(self) -> str:
        return f"{self.base}cursor"

    @property
    def seen_key(self) -> str:
        return f"{self.base}seen"

    # ------------------------------------------------------------------ the writer

    async def hold_lease(self, token: str, ttl_ms: int) -> bool:
        """Take the lease, or keep it when this token holds it; False: another does."""
        return await self._lease.hold(token, ttl_ms)

    async def release(self, token: str) -> None:
        """Let the lease go at once (a closing replica), when this token holds it."""
        await self._lease.release(token)

    async def cursor(self) -> str | None:
        raw = await self.client.get(self.cursor_key)
        return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else None

    async def write(
        self,
        *,
        token: str,
        read_from: str | None,
        cursor: str,
        now_s: int,
        enqueued: int | None,
        queue_depths: Sequence[tuple[str, int | None]],
        jobs: Sequence[FinishedJob],
    ) -> int:
        """One step: count ``jobs`` (each once), record the depth samples, move the cursor
        from ``read_from`` to ``cursor``. Jobs of a queue not in ``queue_depths`` count in
        the source's series only. Returns the jobs counted, or ``LEASE_LOST`` /
        ``STALE_CURSOR`` (then nothing was written)."""
        queues = [q for q, _ in queue_depths][:MAX_QUEUES]
        index = {q: i + 1 for i, q in enumerate(queues)}
        keys = [self.lease_key, self.cursor_key, self.seen_key]
        keys += [self.points_key(w) for w in WINDOWS]
        for queue in queues:
            keys += [self.points_key(w, queue) for w in WINDOWS]
        args: list[str | int] = [token, read_from or "", cursor, now_s, TTL_S]
        args.append("" if enqueued is None else enqueued)
        args.append(len(queues))
        args += ["" if d is None else d for _, d in queue_depths[:MAX_QUEUES]]
        for job in jobs:
            args += [
                f"{job.job_id}:{job.finished_ms}",
                job.finished_ms // 1000,
                "f" if job.failed else "c",
                index.get(job.queue, 0) if job.queue is not None else 0,
            ]
        return int(cast("int", await self._write(keys=keys, args=args)))

    # ------------------------------------------------------------------ the read

    async def read(self, window: Window, queue: str | None, now_s: float) -> Series:
        """The window's points ending with the step that holds ``now_s``: one HMGET."""
        step = STEP_S[window]
        last = int(now_s) // step * step
        starts = [last - i * step for i in reversed(range(POINTS[window]))]
        fields = ["since"]
        for at in starts:
            fields += [f"c:{at}", f"f:{at}", f"e:{at}"]
        raw = cast(
            "list[bytes | None]", await self.client.hmget(self.points_key(window, queue), fields)
        )
        since = _number(raw[0])
        points = []
        for i, at in enumerate(starts):
            c, f, e = raw[1 + 3 * i : 4 + 3 * i]
            points.append(
                SeriesPoint(
                    at=datetime.fromtimestamp(at, tz=UTC),
                    completed=_number(c) or 0,
                    failed=_number(f) or 0,
                    enqueued=_number(e),
                )
            )
        return Series(
            source=self.source,
            window=window,
            step_s=step,
            points=tuple(points),
            queue=queue,
            since=datetime.fromtimestamp(since, tz=UTC) if since is not None else None,
        )


def _number(raw: bytes | None) -> int | None:
    """A count or sample as stored; None when missing or not a whole number (anyone can
    write jobbridge's keys: a broken field reads as unknown, never as an error)."""
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None
