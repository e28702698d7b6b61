"""The adapter contract and helpers every adapter shares."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import redis.exceptions

from jobbridge.adapters import times
from jobbridge.errors import SourceUnavailable
from jobbridge.model import (
    ActionResult,
    Counters,
    JobDetail,
    Snapshot,
    SnapshotQuery,
    System,
    Worker,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.operator import OperatorLog

T = TypeVar("T")

#: Largest error text kept on a record; the rest is cut with a marker.
MAX_ERROR_CHARS = 16_384
#: Largest job name or queue name shown.
MAX_NAME_CHARS = 200
#: How many audit entries jobbridge keeps per Redis.
AUDIT_LIMIT = 10_000
#: How many lifecycle entries jobbridge keeps per source, and for how long per job.
LIFECYCLE_LIMIT = 10_000
LIFECYCLE_TTL_S = 7 * 86_400
#: Largest job record a lifecycle entry keeps a copy of (JB_RECORD_COPY_CAP in lua/_prelude.lua).
RECORD_COPY_CAP = 16_384


class JobAdapter(Protocol):
    """What the service needs from each system. Async throughout.

    Adapters let Redis errors propagate; the service turns them into ``SourceUnavailable``
    (and reads once more after a dropped connection) in one place. What only some systems do
    is an opt-in protocol below, checked with ``isinstance``.
    """

    system: ClassVar[System]
    #: the configured source name
    source: str
    #: the source's Redis client (``decode_responses=False``)
    client: Redis
    #: jobbridge's audit and lifecycle keys for this source
    operator: OperatorLog

    async def snapshot(self, query: SnapshotQuery) -> Snapshot:
        """Read the counters and one page of each list."""
        ...

    async def counters(self) -> Counters:
        """Read the headline counters only."""
        ...

    async def job(self, job_id: str) -> JobDetail | None:
        """Find one job wherever it is, or its lifecycle entry; None when unknown."""
        ...

    async def retry(self, job_id: str, actor: str) -> ActionResult:
        """Re-enqueue a terminally failed job under a new id."""
        ...

    async def discard(self, job_id: str, actor: str) -> ActionResult:
        """Remove a terminally failed job from the failed list."""
        ...

    async def cancel(self, job_id: str, actor: str) -> ActionResult:
        """Remove a job no worker has taken yet."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class DiscoversQueues(Protocol):
    """A system whose queues are found by looking at keys (bounded steps, in the background)."""

    async def refresh_queues(self) -> None:
        """One bounded step of queue discovery; called in the background, never per request."""
        ...

    async def discover_queues(self, max_steps: int = 10_000) -> None:
        """Steps until one full pass completes (the CLI, before a one-shot read)."""
        ...


@runtime_checkable
class ListsWorkers(Protocol):
    """A system that registers its workers in Redis."""

    async def workers(self) -> tuple[Worker, ...]:
        """Every registered worker, bounded (see the adapter for its cap)."""
        ...


@runtime_checkable
class StopsJobs(Protocol):
    """A system whose running jobs can be asked to stop."""

    async def stop(self, job_id: str, actor: str) -> ActionResult:
        """Ask the worker running the job to stop it; report that the request was sent."""
        ...


@runtime_checkable
class RevokesTasks(Protocol):
    """A system whose workers can be told to discard a task they hold (Celery's revoke)."""

    async def revoke(self, job_id: str, actor: str) -> ActionResult:
        """Broadcast the revoke; report that the request was sent."""
        ...


@runtime_checkable
class NamesEntries(Protocol):
    """A system where one id can stand for several entries (two Celery messages carrying one
    task id): its rows name their entry (``JobRecord.entry``), and a page or a cancel that
    names an entry reaches that one only."""

    async def job_entry(self, job_id: str, entry: str) -> JobDetail | None:
        """The job page of exactly this entry; None when no entry of the id is it."""
        ...

    async def cancel_entry(self, job_id: str, entry: str, actor: str) -> ActionResult:
        """Cancel exactly this entry (one waiting message), whatever others share its id."""
        ...


@runtime_checkable
class RunsInBackground(Protocol):
    """A system whose adapter follows Redis in the background (subscriptions, an index it
    keeps): started by the web app's service, never by one-shot CLI reads."""

    async def start(self) -> None:
        """Start the background work (idempotent); ``close`` stops it."""
        ...


#: Failures that make a source unavailable: any error of the Redis conversation (not there,
#: refused by ACLs, read-only, out of memory, not a Redis at all, a failing script) or socket.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.RedisError, OSError)
#: Longest error detail kept from Redis (a garbage reply can be long).
MAX_DETAIL_CHARS = 300


#: How redis-py annotates the error of one command of a pipeline (5.x: the text, 6+: a tuple).
_PIPELINE_ERROR = re.compile(
    r"Command # \d+ \((?P<command>.*?)\) of pipeline caused error: (?P<error>.*)", re.DOTALL
)


def _redis_message(exc: BaseException) -> str:
    """The error text, with a pipeline's annotation made readable: "<error> (in <command>)"."""
    message = str(exc) or type(exc).__name__
    match = _PIPELINE_ERROR.fullmatch(message)
    if match is None:
        return message
    error = match["error"]
    if error[:2] in ("('", '("') and error[-3:] in ("',)", '",)'):
        error = error[2:-3]
    return f"{error} (in {match['command']})"


#: how Redis 6.2 reports an error inside a script, and how 7.x does
_SCRIPT_ERROR_6 = re.compile(
    r"Error running script \(call to f_(?P<sha>[0-9a-f]+)\): (?P<where>@\S+?): (?P<error>.*)",
    re.DOTALL,
)
_SCRIPT_ERROR_7 = re.compile(
    r"(?P<error>.*?) script: (?P<sha>[0-9a-f]+), on (?P<where>@\S+?)\.?", re.DOTALL
)


def script_error(message: str) -> str:
    """An error raised inside a script, worded the same whatever the Redis version:
    "<error> (at @user_script:<line>, script <sha>)"."""
    match = _SCRIPT_ERROR_6.fullmatch(message) or _SCRIPT_ERROR_7.fullmatch(message)
    if match is None:
        return message
    return f"{match['error']} (at {match['where']}, script {match['sha'][:12]})"


def unavailable_detail(exc: BaseException) -> str:
    """A short reason for an unavailable source that names the kind of Redis failure."""
    message = _redis_message(exc)
    e = redis.exceptions
    if isinstance(exc, e.AuthenticationError):
        detail = f"authentication failed: {message}"
    elif isinstance(exc, e.ConnectionError | e.TimeoutError | OSError):
        # Refused, timed out, loading: the words the pages have always shown.
        return cap(message, MAX_DETAIL_CHARS) or message
    elif isinstance(exc, e.NoPermissionError):
        detail = f"permission denied: NOPERM {message}"
    elif isinstance(exc, e.ReadOnlyError):
        detail = f"Redis is read-only: {message}"
    elif isinstance(exc, e.OutOfMemoryError):
        detail = f"Redis is out of memory: OOM {message}"
    elif isinstance(exc, e.NoScriptError):
        detail = f"script not loaded: NOSCRIPT {message}"
    elif isinstance(exc, e.InvalidResponse):
        detail = f"not a Redis server (invalid response: {message})"
    elif isinstance(exc, e.ResponseError) and "script" in message:
        # An error raised inside one of jobbridge's Lua scripts (or by a command it ran).
        detail = f"Lua script failed: {script_error(message)}"
    elif isinstance(exc, e.ResponseError):
        detail = f"Redis refused a command: {message}"
    else:
        detail = f"{type(exc).__name__}: {message}"
    return cap(" ".join(detail.split()), MAX_DETAIL_CHARS) or detail


@asynccontextmanager
async def redis_errors(source: str) -> AsyncIterator[None]:
    """Turn any failure talking to Redis into SourceUnavailable naming the source.

    That covers a Redis that is not there, but also one that refuses us (ACLs, read-only
    replica, MISCONF, OOM, wrong password), a port where no Redis listens, and errors raised by
    jobbridge's own scripts: each makes this one source unavailable, with Redis's reason, while
    the other sources go on. ``DataError`` is raised by redis-py before anything is sent (a
    bad argument from jobbridge itself): a bug, so it propagates.
    """
    try:
        yield
    except redis.exceptions.DataError:
        raise
    except UNAVAILABLE_ERRORS as exc:
        raise SourceUnavailable(
            source, unavailable_detail(exc), reconnectable=dropped_connection(exc)
        ) from exc


def dropped_connection(exc: BaseException) -> bool:
    """Whether a failure is a connection that went away, as after a Redis restart.

    Not a timeout (the server may still be working on the command), not a refused login, not
    a server that is loading its data: those would fail the same way again at once.
    """
    e = redis.exceptions
    if isinstance(exc, e.AuthenticationError | e.BusyLoadingError | e.TimeoutError):
        return False
    return isinstance(exc, e.ConnectionError | ConnectionResetError | BrokenPipeError)


async def read_again_after_drop(source: str, client: Any, read: Callable[[], Awaitable[T]]) -> T:
    """Run an idempotent read; if its connection had dropped, run it once more.

    A Redis that restarted leaves the pool full of closed connections, and each would fail
    one request. After the first failure the idle ones are closed, so the second try opens a
    fresh connection. Only reads come here: an action whose connection dropped may or may not
    have run, and running it again could act twice.
    """
    try:
        async with redis_errors(source):
            return await read()
    except SourceUnavailable as exc:
        if not exc.reconnectable:
            raise
    await client.connection_pool.disconnect(inuse_connections=False)
    async with redis_errors(source):
        return await read()


def text(value: bytes | str | None) -> str | None:
    """Redis bytes to str, replacing invalid UTF-8 rather than failing."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def key_text(value: bytes | str) -> str:
    """A job id or key name read from Redis, as text that encodes back to the same bytes.

    Bytes that are not UTF-8 become lone surrogates (``surrogateescape``); clients are made
    with ``encoding_errors="surrogateescape"`` (jobbridge.sources.connect), so such an id
    finds its job again. Pages and the terminal show those characters as U+FFFD.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return value


def score_ms(score: float) -> int | None:
    """A sorted-set score as Unix ms; None for +/-inf, NaN and years past 9999."""
    ms = times.finite(score)
    if ms is None or abs(ms) > times.MAX_EPOCH_MS:
        return None
    return int(ms)


def cap(value: str | None, limit: int) -> str | None:
    """Cut attacker-sized text to a limit, marking the cut."""
    if value is None or len(value) <= limit:
        return value
    return value[:limit] + f"… [{len(value) - limit} more characters]"


def glob_escape(literal: str) -> str:
    """``literal`` as a Redis glob pattern that matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in literal)


def ms_to_datetime(value: object) -> datetime | None:
    """Unix milliseconds to an aware UTC datetime; None for null, non-integers or nonsense."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return times.epoch_ms(value)


def whole_ms(value: object) -> object:
    """A JSON number of ms as an int (cjson may write a float); anything else unchanged."""
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return value


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def now_ms() -> int:
    return datetime_to_ms(datetime.now(tz=UTC))


def identity_value(payload: object, keys: tuple[str, ...]) -> str | None:
    """Autumn's identity rule: the first top-level key with a usable value.

    A non-empty string is used as is; numbers and booleans become JSON text; empty strings,
    null, objects and arrays are skipped in favour of the next key.
    """
    if not isinstance(payload, Mapping):
        return None
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str):
            if value:
                return cap(value, MAX_NAME_CHARS)
        elif isinstance(value, bool | int | float):
            return json.dumps(value)
    return None


PRINCIPAL_KEYS = ("principal_id", "principal", "user_id")
CORRELATION_KEYS = ("correlation_id", "request_id")


def principal_of(payload: object) -> str | None:
    return identity_value(payload, PRINCIPAL_KEYS)


def correlation_of(payload: object) -> str | None:
    return identity_value(payload, CORRELATION_KEYS)


def client_location(client: Any) -> str:
    """host:port/db (or socket path/db) of a client, to tell Redis databases apart; for a
    client of a Sentinel-managed master, the master's name and the sentinels asked."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    service = getattr(pool, "service_name", None)
    if service is not None:
        sentinels = getattr(getattr(pool, "sentinel_manager", None), "sentinels", ())
        asked = ",".join(
            f"{s.connection_pool.connection_kwargs.get('host')}:"
            f"{s.connection_pool.connection_kwargs.get('port')}"
            for s in sentinels
        )
        return f"sentinel:{service}@{asked}/{kwargs.get('db', 0)}"
    where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    return f"{where}/{kwargs.get('db', 0)}"
