"""What every jobbridge process behind one load balancer must agree on, kept in Redis:
signed-out sessions, failed sign-ins per address and the live replicas, under
``<prefix>state:``, bounded and expiring. When that Redis is down each process goes on with
what it knows and requests never wait on it. The keys and the outage behaviour:
docs/operations.md ("Several replicas").
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING

from jobbridge.service import UNAVAILABLE_ERRORS, unavailable_detail
from jobbridge.settings import Settings
from jobbridge.web.config_identity import config_identity
from jobbridge.web.throttle import WINDOW_S

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: seconds between background checks (heartbeat, retry of writes, replica list)
HEARTBEAT_S = 5.0
#: a replica whose heartbeat is older than this is gone
REPLICA_TTL_S = 30.0
#: longest a request waits for the shared Redis before going on without it
REQUEST_TIMEOUT_S = 0.5
#: sign-outs waiting to be written while the Redis is down, at most
MAX_PENDING = 10_000
#: what makes the shared Redis unavailable for a while
_FAILURES: tuple[type[Exception], ...] = (*UNAVAILABLE_ERRORS, TimeoutError)


class SharedState:
    """The shared sign-outs and sign-in failures of one app; see the module docstring."""

    def __init__(
        self,
        client: Redis | None,
        prefix: str,
        *,
        key_fingerprint: str,
        window_s: float,
        config: str = "",
    ) -> None:
        """Args:
        client: the shared Redis, or None to keep everything in this process.
        prefix: jobbridge's key prefix there ("jobbridge:").
        key_fingerprint: names the key this process signs sessions with (not the key).
        window_s: the sign-in throttle's window.
        config: the identity of the sources served (``config_identity``): only processes
            with the same one count as replicas of this one.
        """
        self.client = client
        self.prefix = f"{prefix}state:"
        self.key_fingerprint = key_fingerprint
        self.config = config
        self.window_s = window_s
        #: whether requests use the shared Redis now
        self.up = client is not None
        self.detail: str | None = None
        #: live processes sharing the state, this one included, and how many of them sign
        #: sessions with another key than this one
        self.replicas = 1
        self.disagreeing = 0
        self._pending: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._started = int(time.time())

    @classmethod
    def for_settings(cls, settings: Settings, *, key_fingerprint: str) -> SharedState:
        """The shared state the settings name (``[server] shared_state_url``)."""
        from jobbridge.sources import connect

        url = settings.server.shared_state_url
        client: Redis | None = None
        prefix = "jobbridge:"
        if url is None and settings.sources:
            first = settings.sources[0]
            prefix = first.jobbridge_prefix
            client = connect(
                first.redis_url,
                sentinel_master=first.sentinel_master,
                sentinel_password=first.sentinel_password,
            )
        elif url:
            client = connect(url)
        return cls(
            client,
            prefix,
            key_fingerprint=key_fingerprint,
            window_s=WINDOW_S,
            config=config_identity(settings),
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the background checks (the first one at once)."""
        if self.client is not None and self._task is None:
            self._task = asyncio.create_task(self._beat_forever())

    async def close(self) -> None:
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if self.client is not None:
            try:
                await asyncio.wait_for(
                    self.client.hdel(self.prefix + "replicas", self.replica_id), REQUEST_TIMEOUT_S
                )
            except _FAILURES:
                pass
            await self.client.aclose()

    async def _beat_forever(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(HEARTBEAT_S)

    async def check(self) -> None:
        """One background step: write what waits, announce this process, read the others."""
        assert self.client is not None
        try:
            await asyncio.wait_for(self._beat(), timeout=HEARTBEAT_S)
        except _FAILURES as exc:
            self._went_down(exc)
            return
        if not self.up:
            log.warning("shared state in Redis is reachable again; replicas share it again")
        self.up, self.detail = True, None

    async def _beat(self) -> None:
        assert self.client is not None
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for sid, exp in list(self._pending.items())[:1000]:
            if exp > now:
                pipe.set(self._signed_out(sid), "1", exat=exp)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self._started,
            "seen": int(now),
            "key": self.key_fingerprint,
            "config": self.config,
        }
        pipe.hset(self.prefix + "replicas", self.replica_id, json.dumps(me))
        pipe.hgetall(self.prefix + "replicas")
        replies = await pipe.execute()
        for sid in list(self._pending)[:1000]:
            del self._pending[sid]
        live, stale, other_keys = 0, [], 0
        for field, raw in replies[-1].items():
            try:
                record = json.loads(raw)
                seen, key = float(record["seen"]), record["key"]
                # Before config identities, every process on the Redis was a replica.
                config = record.get("config", self.config)
            except (ValueError, KeyError, TypeError, AttributeError):
                stale.append(field)
                continue
            if now - seen > REPLICA_TTL_S:
                stale.append(field)
                continue
            if config != self.config:
                continue  # another deployment's process, serving other sources
            live += 1
            other_keys += key != self.key_fingerprint
        if stale:
            await self.client.hdel(self.prefix + "replicas", *stale)
        if other_keys and not self.disagreeing:
            log.warning(
                "%d other jobbridge process(es) sharing this Redis sign sessions with another "
                "key: a session signed by one is refused by the others; give every replica "
                "the same [auth] session_secret",
                other_keys,
            )
        self.replicas, self.disagreeing = max(1, live), other_keys

    def _went_down(self, exc: BaseException) -> None:
        detail = unavailable_detail(exc) if not isinstance(exc, TimeoutError) else "timed out"
        if self.up:
            log.warning(
                "shared state in Redis is unavailable (%s): sign-outs and failed sign-ins "
                "count on this process only until it is back",
                detail,
            )
        self.up, self.detail = False, detail

    # ------------------------------------------------------------------ sign-outs

    def _signed_out(self, sid: str) -> str:
        return f"{self.prefix}signed-out:{sid}"

    async def sign_out(self, sid: str, exp: int) -> None:
        """Tell every process that session ``sid`` (expiring at ``exp``) has ended."""
        if self.client is None:
            return
        if self.up:
            try:
                await asyncio.wait_for(
                    self.client.set(self._signed_out(sid), "1", exat=exp), REQUEST_TIMEOUT_S
                )
                return
            except _FAILURES as exc:
                self._went_down(exc)
        if len(self._pending) < MAX_PENDING:
            self._pending[sid] = exp

    async def signed_out(self, sid: str) -> bool:
        """Whether another process (or this one) signed session ``sid`` out."""
        if self.client is None or not self.up:
            return False
        try:
            found = await asyncio.wait_for(
                self.client.exists(self._signed_out(sid)), REQUEST_TIMEOUT_S
            )
        except _FAILURES as exc:
            self._went_down(exc)
            return False
        return bool(found)

    # ------------------------------------------------------------------ failed sign-ins

    def _failures(self, address: str) -> str:
        return f"{self.prefix}sign-in-failures:{address}"

    async def failed(self, address: str) -> None:
        """Count one failed sign-in from ``address`` for every process."""
        if self.client is None or not self.up:
            return
        now = time.time()
        key = self._failures(address)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(key, {f"{now:.6f}:{secrets.token_hex(3)}": now})
        pipe.zremrangebyscore(key, "-inf", now - self.window_s)
        pipe.expire(key, math.ceil(self.window_s) + 1)
        try:
            await asyncio.wait_for(pipe.execute(), REQUEST_TIMEOUT_S)
        except _FAILURES as exc:
            self._went_down(exc)

    async def wait_s(self, address: str, max_failures: int) -> int:
        """Whole seconds ``address`` must wait, counting the failures every process saw."""
        if self.client is None or not self.up or not max_failures:
            return 0
        now = time.time()
        key = self._failures(address)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcount(key, now - self.window_s, "+inf")
        # the failure whose leaving the window lets the address try again
        pipe.zrevrange(key, max_failures - 1, max_failures - 1, withscores=True)
        try:
            count, nth = await asyncio.wait_for(pipe.execute(), REQUEST_TIMEOUT_S)
        except _FAILURES as exc:
            self._went_down(exc)
            return 0
        if int(count) < max_failures or not nth:
            return 0
        return max(1, math.ceil(float(nth[0][1]) + self.window_s - now))
