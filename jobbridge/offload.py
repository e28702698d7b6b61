"""Decoding big values in a worker process, so the event loop never waits on it.

Python's JSON decoder holds the GIL for the whole document: a record of a few megabytes takes
tens to hundreds of milliseconds to decode, and a thread would stall the event loop just as
long. Values up to :data:`INLINE_BYTES` are decoded in place (a few milliseconds at most);
bigger ones go to one worker process, started on first use. What comes back is small (a row,
a capped preview), so moving it between processes costs little.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: values up to this size are decoded on the event loop (a few ms of work at most)
INLINE_BYTES = 256 * 1024
#: values up to this size are hashed on the event loop; bigger ones in a thread (hashlib
#: releases the GIL while it hashes)
INLINE_HASH_BYTES = 1024 * 1024
#: bytes of a digest that identifies a stored value
DIGEST_BYTES = 16

_pool: ProcessPoolExecutor | None = None


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # spawn, not fork: the parent runs an event loop and threads that a fork would copy
        # in whatever state they are in.
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _pool


async def decode(fn: Callable[..., T], raw: bytes, *args: object) -> T:
    """``fn(raw, *args)``, in the worker process when ``raw`` is big.

    ``fn`` must be a module-level function and its arguments and result picklable.
    """
    if len(raw) <= INLINE_BYTES:
        return fn(raw, *args)
    global _pool
    pool = _get_pool()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, partial(fn, raw, *args))
    except BrokenProcessPool:
        # The worker died (killed, out of memory): start a fresh one next time.
        log.warning("the decoding process died; starting a new one")
        if _pool is pool:
            _pool = None
        pool.shutdown(wait=False)
        raise


def digest_now(raw: bytes) -> bytes:
    """The digest that identifies a stored value (its exact bytes)."""
    return hashlib.blake2b(raw, digest_size=DIGEST_BYTES).digest()


async def digest(raw: bytes) -> bytes:
    """``digest_now``, hashed in a thread when the value is big."""
    if len(raw) <= INLINE_HASH_BYTES:
        return digest_now(raw)
    return await asyncio.to_thread(digest_now, raw)


def shutdown() -> None:
    """Stop the worker process (tests and clean exits; it is restarted on demand)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
