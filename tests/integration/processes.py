"""Worker subprocesses of the systems under test (``rq worker``, ``celery worker``): each in
its own session, so a stop also reaches the children it forked, logging to a file that is
shown whenever a worker does not behave."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

ROOT = Path(__file__).resolve().parents[2]


def spawn(
    command: Sequence[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` from the repository root in a new session, output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class WorkerProcess:
    """One worker subprocess: its logs, whether it lives, and a stop that always ends it."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    #: what a stop sends after the first (warm) SIGTERM, with how long to wait for the exit
    FOLLOW_UP: ClassVar[tuple[signal.Signals, float]] = (signal.SIGTERM, 3.0)

    def logs(self, tail: int = 8000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"
        return text[-tail:]

    def describe(self) -> str:
        return (
            f"worker {self.name} (pid {self.process.pid}, rc {self.process.poll()}), "
            f"log {self.log_path}:\n{self.logs()}"
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def assert_alive(self) -> None:
        assert self.alive, f"worker exited: {self.describe()}"

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM (warm shutdown), the follow-up signal (cold), then SIGKILL the group."""
        for sig, wait in ((signal.SIGTERM, grace), self.FOLLOW_UP):
            if not self.alive:
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        if self.alive:
            self._kill_group()
            self.process.wait(timeout=10)
        # Children left behind by a parent that died: the worker's session is its group.
        self._kill_group()
        return self.process.returncode

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


W = TypeVar("W", bound=WorkerProcess)
P = TypeVar("P", bound="ProcessPool[Any]")


@dataclass
class ProcessPool(Generic[W]):
    """Workers started for one test; ``close`` stops whatever is still running."""

    redis_url: str
    log_dir: Path
    workers: list[W] = field(default_factory=list)

    def describe(self) -> str:
        return "\n\n".join(w.describe() for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


@contextmanager
def running(pool: P) -> Iterator[P]:
    """``pool``, its workers stopped however the test ends."""
    try:
        yield pool
    finally:
        pool.close()
