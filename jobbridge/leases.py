"""Leases on jobbridge's own keys: one replica at a time does a piece of background work
(writes a source's chart series, runs a queue's census). ``lua/lease.lua`` takes, renews and
gives one up in one step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobbridge.lua_text import lua_text

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript


def script_text() -> str:
    """The lease script, as shipped."""
    return lua_text("jobbridge", "lease")


class Lease:
    """The lease held in one key."""

    def __init__(self, client: Redis, key: str) -> None:
        self.key = key
        self._script: AsyncScript = client.register_script(script_text())

    async def hold(self, token: str, ttl_ms: int) -> bool:
        """Take the lease, or renew it when this token holds it; False: another does."""
        return bool(await self._script(keys=[self.key], args=[token, max(1, ttl_ms)]))

    async def release(self, token: str) -> None:
        """Give the lease up at once, when this token holds it."""
        await self._script(keys=[self.key], args=[token, 0])
