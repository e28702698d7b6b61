"""Redis failures in words: what makes a source unavailable, and reading again after a dropped
connection."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import redis.exceptions

from jobbridge.adapters.fields import cap
from jobbridge.errors import SourceUnavailable

if TYPE_CHECKING:
    pass

T = TypeVar("T")


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
