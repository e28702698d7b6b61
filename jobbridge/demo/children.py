"""The demo's child processes: each in a session (so a process group) of its own, logging to a
file in the demo's temporary directory, and all stopped together: SIGTERM to every group, a
grace period for warm shutdowns, then SIGKILL to whatever is left (a worker's forked children
included, which a signal to the worker alone would miss)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobbridge.text import clean

#: seconds the children get for a warm shutdown (a slow demo job runs up to 8 s)
GRACE_S = 10.0
#: seconds to wait for a group to vanish after SIGKILL
KILL_WAIT_S = 5.0
#: lines of a child's log shown when it exits on its own
TAIL_LINES = 5


@dataclass
class Child:
    """One child process (the leader of its own process group)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pgid(self) -> int:
        """The process group: the leader's pid (``start_new_session``)."""
        return self.process.pid

    def group_alive(self) -> bool:
        """Whether any process of the group is still running (the leader reaped or not)."""
        self.process.poll()
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - a group we cannot signal is not ours
            return False
        return True

    def signal_group(self, signum: signal.Signals) -> None:
        try:
            os.killpg(self.pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self) -> str:
        """The last lines of its log, on one line."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(clean(line) for line in lines[-TAIL_LINES:])


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], logdir: Path) -> Child:
    """Start ``argv`` as a child in a new session, its output in ``logdir/<name>.log``."""
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log)


def _wait_until(children: Iterable[Child], deadline: float) -> list[Child]:
    """Wait until every group is gone or the deadline passes; the groups still alive."""
    left = list(children)
    while left:
        left = [child for child in left if child.group_alive()]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return left


def stop_all(children: Sequence[Child], grace_s: float = GRACE_S) -> list[str]:
    """Stop every child's whole group: SIGTERM, ``grace_s``, then SIGKILL.

    Returns:
        The names of the children that had to be killed.
    """
    for child in children:
        child.signal_group(signal.SIGTERM)
    left = _wait_until(children, time.monotonic() + grace_s)
    for child in left:
        child.signal_group(signal.SIGKILL)
    still = _wait_until(left, time.monotonic() + KILL_WAIT_S)
    for child in children:
        if child.process.poll() is None and child not in still:
            child.process.wait(timeout=1)
    return [child.name for child in left]


class Watcher(threading.Thread):
    """Reports, once each, a child that exits while the demo runs (with its log's tail)."""

    def __init__(self, children: Sequence[Child], report: Callable[[str], None]) -> None:
        super().__init__(name="demo-watcher", daemon=True)
        self.children = children
        self.report = report
        self.stopping = threading.Event()

    def run(self) -> None:
        reported: set[str] = set()
        while not self.stopping.wait(1.0):
            for child in self.children:
                code = child.process.poll()
                if code is not None and child.name not in reported:
                    reported.add(child.name)
                    self.report(f"the demo's {child.name} exited ({code}): {child.tail()}")
