"""Worker subprocesses of the systems under test (``rq worker``, ``celery worker``, Autumn's
emulator worker): each in its own session, so a stop also reaches the children it forked,
logging to a file (never a pipe, which a chatty worker fills and then blocks on) that is shown
whenever a worker does not behave.

Deadlines are written for a quiet machine and stretched by :func:`scaled` on a loaded one: a
wait that succeeds costs no more, a wait that fails still fails, only later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

ROOT = Path(__file__).resolve().parents[2]
#: the most :func:`scaled` stretches a deadline
MAX_LOAD_FACTOR = 4.0
#: how soon a worker that is only exiting (``WorkerProcess.exiting``) gets the next signal
EXITING_FOLLOW_UP = 1.5


def load_factor() -> float:
    """How much slower than a quiet machine this one may be: the 1-minute load average per
    core, between 1 and :data:`MAX_LOAD_FACTOR`."""
    try:
        per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 1.0
    return min(MAX_LOAD_FACTOR, max(1.0, per_core))


def scaled(seconds: float) -> float:
    """A deadline of ``seconds`` on a quiet machine, stretched by the current load."""
    return seconds * load_factor()


def spawn(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, *, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """Start ``command`` (from the repository root) in a new session, output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
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

    #: how long the first (warm) SIGTERM is given, on a quiet machine
    GRACE: ClassVar[float] = 5.0
    #: what a stop sends after the warm SIGTERM, with how long to wait for the exit
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

    def stop(self, grace: float | None = None) -> int | None:
        """SIGTERM (warm shutdown), the follow-up signal (cold), then SIGKILL the group."""
        return stop_all([self], grace)[0]

    def exiting(self) -> bool:
        """Whether the worker logged that it runs nothing more and is only exiting (then a
        stop need not wait out the warm shutdown's grace)."""
        return False

    def kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def stop_all(workers: Sequence[WorkerProcess], grace: float | None = None) -> list[int | None]:
    """Stop ``workers`` together, as ``WorkerProcess.stop`` does one: a pool of slow stoppers
    costs one worker's wait, not one per worker. ``grace`` overrides each one's ``GRACE``.
    Their exit codes, in order."""
    stages = (
        lambda w: (signal.SIGTERM, w.GRACE if grace is None else grace),
        lambda w: w.FOLLOW_UP,
    )
    for stage in stages:
        sent = time.monotonic()
        deadlines: list[tuple[WorkerProcess, float]] = []
        for worker in workers:
            if worker.alive:
                sig, wait = stage(worker)
                worker.process.send_signal(sig)
                deadlines.append((worker, sent + scaled(wait)))
        for worker, deadline in deadlines:
            # RQ ignores a second signal that comes within a second of the first.
            while worker.alive and time.monotonic() < deadline:
                if worker.exiting() and time.monotonic() - sent > EXITING_FOLLOW_UP:
                    break
                time.sleep(0.05)
    for worker in workers:
        if worker.alive:
            worker.kill_group()
            worker.process.wait(timeout=scaled(10))
        # Children left behind by a parent that died: the worker's session is its group.
        worker.kill_group()
    return [w.process.returncode for w in workers]


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
        stop_all(self.workers)


@contextmanager
def running(pool: P) -> Iterator[P]:
    """``pool``, its workers stopped however the test ends."""
    try:
        yield pool
    finally:
        pool.close()
