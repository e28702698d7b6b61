"""A queue's census in Redis, under jobbridge's prefix of the source.

Keys (``<prefix>census:<source>:<queue>:…``; docs/operations.md, "Queue census"):

- ``…:result``: a hash: ``state``, ``total`` (waiting jobs at the start), ``read``,
  ``missing``, ``names`` and ``principals`` (JSON lists of ``[name, count]``, most first,
  at most ``TOP``), ``other_names``, ``other_principals``, ``distinct``, ``started_at``,
  ``updated_at``, ``finished_at`` (Unix ms), ``note``, ``error``;
- ``…:lease``: the token of the process running the census (SET NX PX, renewed by each
  write, given up by the last one).

The result expires ``TTL_S`` after its last write; the lease ``LEASE_MS`` after its last
renewal, so a census whose process stopped reads as interrupted soon after.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from jobbridge.census.model import CensusResult, CensusState, Counted
from jobbridge.leases import Lease
from jobbridge.lua_text import lua_text

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: seconds a result lives after its last write
TTL_S = 24 * 3600
#: how long a lease outlives its last renewal, ms
LEASE_MS = 15_000
#: the write script's refusal
LEASE_LOST = -1


def script(name: str) -> str:
    """The text of ``census/lua/<name>.lua``, as shipped."""
    return lua_text("jobbridge.census", name)


class CensusStore:
    """One queue's census keys on the source's Redis."""

    def __init__(self, client: Redis, prefix: str, source: str, queue: str) -> None:
        self.client = client
        self.source = source
        self.queue = queue
        self.base = f"{prefix}census:{source}:{queue}:"
        self._lease = Lease(client, self.lease_key)
        self._write = client.register_script(script("write"))

    @property
    def lease_key(self) -> str:
        return f"{self.base}lease"

    @property
    def result_key(self) -> str:
        return f"{self.base}result"

    async def take_lease(self, token: str) -> bool:
        """Take the lease (or keep it); False: another process runs this census."""
        return await self._lease.hold(token, LEASE_MS)

    async def release(self, token: str) -> None:
        await self._lease.release(token)

    async def write(
        self, token: str, fields: dict[str, str | int], *, first: bool = False, last: bool = False
    ) -> bool:
        """Store fields of the result while ``token`` holds the lease; False: it does not
        (nothing was written)."""
        args: list[str | int] = [token, LEASE_MS, TTL_S, int(first), int(last)]
        for name, value in fields.items():
            args += [name, value]
        done = await self._write(keys=[self.lease_key, self.result_key], args=args)
        return int(cast("int", done)) != LEASE_LOST

    async def read(self) -> CensusResult | None:
        """The stored census (one HGETALL of a bounded hash and one GET); None: none."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.result_key)
        pipe.exists(self.lease_key)
        raw, leased = await pipe.execute()
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in cast("dict[bytes, bytes]", raw).items()}
        return result_of(self.source, self.queue, fields, leased=bool(leased))


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _int(value: str | None) -> int:
    """A stored count; 0 when missing or broken (anyone may write jobbridge's keys)."""
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _time(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value or "") / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _counted(value: str | None) -> tuple[Counted, ...]:
    try:
        loaded: Any = json.loads(value or "[]")
    except ValueError:
        return ()
    if not isinstance(loaded, list):
        return ()
    return tuple(
        Counted(str(item[0]), int(item[1]))
        for item in loaded
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], int)
    )


def result_of(source: str, queue: str, fields: dict[str, str], *, leased: bool) -> CensusResult:
    """A stored hash as a result; a running census nobody holds the lease of is interrupted."""
    try:
        state = CensusState(fields.get("state", ""))
    except ValueError:
        state = CensusState.FAILED
    if state is CensusState.RUNNING and not leased:
        state = CensusState.INTERRUPTED
    principals = fields.get("principals")
    return CensusResult(
        source=source,
        queue=queue,
        state=state,
        total_at_start=_int(fields.get("total")),
        read=_int(fields.get("read")),
        names=_counted(fields.get("names")),
        other_names=_int(fields.get("other_names")),
        distinct_names=_int(fields.get("distinct")),
        principals=_counted(principals) if principals is not None else None,
        other_principals=_int(fields.get("other_principals")),
        missing=_int(fields.get("missing")),
        started_at=_time(fields.get("started_at")),
        finished_at=_time(fields.get("finished_at")),
        updated_at=_time(fields.get("updated_at")),
        note=fields.get("note") or None,
        error=fields.get("error") or None,
    )
