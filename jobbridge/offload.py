"""Decoding big values in a worker process, so the event loop never waits on it.

Python's JSON decoder holds the GIL for the whole document, so a thread would stall the loop
as long. Values up to :data:`INLINE_BYTES` are decoded in place; bigger ones go to one worker
process (``python -m jobbridge.offload``, see :class:`_Worker`), started on first use.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import enum
import hashlib
import importlib
import io
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: values up to this size are decoded on the event loop (a few ms of work at most)
INLINE_BYTES = 256 * 1024
#: values up to this size are hashed on the event loop; bigger ones in a thread (hashlib
#: releases the GIL while it hashes)
INLINE_HASH_BYTES = 1024 * 1024
#: bytes of a digest that identifies a stored value
DIGEST_BYTES = 16
#: the only functions the worker runs: jobbridge's own, by module
_ALLOWED_PREFIX = "jobbridge."
_HEADER = struct.Struct("!Q")


class DecodeFailed(RuntimeError):
    """The worker process died or could not run the call."""


def _write(stream: IO[bytes], value: object) -> None:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(body)))
    stream.write(body)
    stream.flush()


#: the standard library classes a frame may hold
_STDLIB_CLASSES = frozenset(
    {("datetime", "datetime"), ("datetime", "timezone"), ("datetime", "timedelta")}
)


class _FrameUnpickler(pickle.Unpickler):
    """Builds plain values, datetimes and jobbridge's own dataclasses, named tuples and
    enums only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _STDLIB_CLASSES:
            return super().find_class(module, name)
        if module.startswith(_ALLOWED_PREFIX):
            found = super().find_class(module, name)
            if isinstance(found, type) and (
                dataclasses.is_dataclass(found)
                or issubclass(found, enum.Enum)
                or (issubclass(found, tuple) and hasattr(found, "_fields"))  # a NamedTuple
            ):
                return found
        raise pickle.UnpicklingError(f"{module}.{name} may not be in a frame")


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the decoding process closed its output")
    (size,) = _HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("the decoding process closed its output")
    return _FrameUnpickler(io.BytesIO(body)).load()


class _Worker:
    """One worker process; calls go through it one at a time, from any thread.

    A plain subprocess talking over stdin and stdout, not a ``multiprocessing`` pool: "spawn"
    re-imports the parent's main script, which breaks a program embedding jobbridge without
    an ``if __name__ == "__main__"`` guard, and "fork" copies the event loop's threads
    mid-flight. The parent sends the name of a function of this package and the stored bytes;
    the worker returns a small result (a row, a capped preview), as length-prefixed pickle
    frames. Each side reads frames with an unpickler that builds only plain values, datetimes
    and jobbridge's own dataclasses and enums, so even a tampered frame cannot run code. Job
    data itself is only ever JSON-decoded.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        #: calls that ran in the worker (the tests read it)
        self.calls = 0

    def call(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        with self._lock:
            process = self._ensure()
            assert process.stdin is not None and process.stdout is not None
            try:
                _write(process.stdin, (fn.__module__, fn.__qualname__, args))
                status, value = _read(process.stdout)
            except (OSError, EOFError, pickle.PickleError) as exc:
                # Never sent again: if this input is what killed it, it would kill the next.
                self._stop()
                raise DecodeFailed(f"the decoding process died ({exc})") from None
            self.calls += 1
        if status != "ok":
            raise DecodeFailed(str(value))
        result: T = value
        return result

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "jobbridge.offload"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        return self._process

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        if process.poll() is None:
            process.kill()
        process.wait()

    def stop(self) -> None:
        with self._lock:
            self._stop()


_worker = _Worker()
atexit.register(_worker.stop)


async def decode(
    fn: Callable[..., T], raw: bytes, *args: object, inline_bytes: int = INLINE_BYTES
) -> T:
    """``fn(raw, *args)``, in the worker process when ``raw`` is bigger than ``inline_bytes``.

    ``fn`` must be a module-level function of this package, its arguments and result
    picklable. If the worker cannot run it, it runs here instead (and the loop waits).
    Compressed input costs what it inflates to, not what it weighs: its callers pass a
    lower ``inline_bytes`` (0: always in the worker).
    """
    if len(raw) <= inline_bytes:
        return fn(raw, *args)
    try:
        return await asyncio.get_running_loop().run_in_executor(
            None, _worker.call, fn, (raw, *args)
        )
    except DecodeFailed as exc:
        log.warning("decoding %d bytes here instead: %s", len(raw), exc)
        return fn(raw, *args)


def digest_now(raw: bytes) -> bytes:
    """The digest that identifies a stored value (its exact bytes)."""
    return hashlib.blake2b(raw, digest_size=DIGEST_BYTES).digest()


async def digest(raw: bytes) -> bytes:
    """``digest_now``, hashed in a thread when the value is big."""
    if len(raw) <= INLINE_HASH_BYTES:
        return digest_now(raw)
    return await asyncio.to_thread(digest_now, raw)


def _serve(incoming: IO[bytes], outgoing: IO[bytes]) -> None:
    """The worker's loop: run each call it is sent until its input closes."""
    while True:
        try:
            module_name, name, args = _read(incoming)
        except EOFError:
            return
        try:
            if not module_name.startswith(_ALLOWED_PREFIX):
                raise PermissionError(f"{module_name}.{name} is not jobbridge's")
            fn = getattr(importlib.import_module(module_name), name)
            reply: tuple[str, object] = ("ok", fn(*args))
        except Exception as exc:  # reported to the caller, which decodes in place
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:300]}")
        _write(outgoing, reply)


if __name__ == "__main__":
    # Below the server in the CPU scheduler: on a small machine a long decode must not take
    # the core the event loop needs.
    os.nice(10)
    _serve(sys.stdin.buffer, sys.stdout.buffer)
