"""How many reads each Redis server has in flight, and how long a read may take.

Reads are limited per server, never across all of them, and each has a deadline, so one slow
server stalls no source on another: its sources report "timed out after N s"
(:class:`~jobbridge.errors.SourceTimedOut`) while the others answer (docs/operations.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jobbridge.errors import SourceTimedOut

T = TypeVar("T")

#: Reads of one server (or of one set of servers, see ReadLimits) in flight at once.
READS_PER_SERVER = 4
#: Seconds a read may take, waiting for its server's limit included, by default.
DEFAULT_READ_TIMEOUT_S = 2.0


def server_of(client: Any) -> str:
    """The server a redis-py client talks to: ``host:port``, ``unix:path``, or the Sentinel
    master's name with the sentinels asked (failovers move it; it stays one server).

    Databases and credentials are left out: one server process serves them all, and a slow
    command stalls every database of it.
    """
    pool = client.connection_pool
    service = getattr(pool, "service_name", None)
    if service is not None:
        sentinels = sorted(
            server_of(sentinel) for sentinel in getattr(pool.sentinel_manager, "sentinels", ())
        )
        return f"sentinel master {service!r} via {','.join(sentinels)}"
    kwargs = pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def servers_of(adapter: Any) -> tuple[str, ...]:
    """Every server an adapter reads: its client's, and its ``results`` client's where it has
    one (a result backend elsewhere). Something without a usable client is its own server."""
    try:
        clients = [adapter.client, getattr(adapter, "results", None)]
        return tuple(sorted({server_of(c) for c in clients if c is not None}))
    except AttributeError:
        return (f"source {adapter.source!r}",)


class ReadLimits:
    """Per-server read limits, each read under one deadline.

    A source's reads share one limit with every source that reads exactly the same servers. A
    Celery source whose result backend is another server reads two servers, so it has a limit
    of its own: a slow backend then holds none of the broker server's slots that other sources
    wait for (that server may then see the broker's share plus this source's share at once).
    """

    def __init__(self, timeout_s: float, per_server: int = READS_PER_SERVER) -> None:
        self.timeout_s = timeout_s
        self.per_server = per_server
        self._servers: dict[str, tuple[str, ...]] = {}
        self._limits: dict[tuple[str, ...], asyncio.Semaphore] = {}

    def servers(self, adapter: Any) -> tuple[str, ...]:
        """The servers a source reads (worked out once per source)."""
        servers = self._servers.get(adapter.source)
        if servers is None:
            servers = self._servers[adapter.source] = servers_of(adapter)
        return servers

    async def run(self, adapter: Any, read: Callable[[], Awaitable[T]]) -> T:
        """Run one read of a source within its servers' limit and the deadline.

        The deadline counts the wait for a slot too, so a caller hears back in
        ``timeout_s`` however many reads queue behind a frozen server. A read cut short is
        cancelled inside redis-py, which closes that connection rather than pool it with a
        reply still due (``Connection.read_response`` and ``Pipeline._execute_pipeline``
        disconnect on any ``BaseException``).

        The read runs as a task of its own and the caller stops waiting at the deadline
        whatever the task does: on Python 3.11 a cancel that lands as redis-py's
        ``asyncio.wait_for`` finishes a send (a read that got its slot just as its deadline
        passed) is swallowed (CPython gh-86296), and the read would go on to the 5 s socket
        timeout. Such a task still ends by that timeout, and holds its slot until then.

        Raises:
            SourceTimedOut: the read did not finish in ``timeout_s``.
        """
        servers = self.servers(adapter)
        limit = self._limits.get(servers)
        if limit is None:
            limit = self._limits[servers] = asyncio.Semaphore(self.per_server)
        task = asyncio.ensure_future(_within(limit, read))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
        except asyncio.CancelledError:
            _abandon(task)
            raise
        if task in done:
            return task.result()
        _abandon(task)
        raise SourceTimedOut(adapter.source, self.timeout_s)


async def _within(limit: asyncio.Semaphore, read: Callable[[], Awaitable[T]]) -> T:
    async with limit:
        return await read()


#: reads cut short that have not ended yet (asyncio keeps only weak references to tasks)
_ABANDONED: set[asyncio.Future[Any]] = set()


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a read nobody waits for any more, and keep it until it has ended."""
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_ended)


def _ended(task: asyncio.Future[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: the caller has heard "timed out" already
