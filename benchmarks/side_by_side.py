"""What the side-by-side benchmarks share: their server processes, timing and tables.

``bench_rq_reads`` (against rq-dashboard) and ``bench_celery`` (against Flower) each start their
own Redis and HTTP servers, time the same pages on each tool in turn and print medians, p95s and
the servers' memory; the pieces they have in common live here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobbridge.dev.private_redis import RedisServer

# --- processes -------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB (empty when it is gone)."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (jobbridge serve has a decoding process)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@dataclass
class Memory:
    """A server's resident memory in KiB: its own, and that of its child processes."""

    rss: int = 0
    peak: int = 0
    children: int = 0
    children_rss: int = 0
    children_peak: int = 0

    def __str__(self) -> str:
        if not self.rss:
            return "-"
        text = f"{self.rss / 1024:.0f} MB (peak {self.peak / 1024:.0f})"
        if self.children:
            text += (
                f" + {self.children} child {self.children_rss / 1024:.0f} MB"
                f" (peak {self.children_peak / 1024:.0f})"
            )
        return text


@dataclass
class Server:
    """One long-running process of the benchmark, in its own session, output in a log file."""

    name: str
    argv: list[str]
    ready_url: str
    log: Path
    env: dict[str, str] | None = None
    #: the working directory (None: this script's)
    cwd: Path | None = None
    #: whether a timed-out request may be cut short by restarting it (Flower's history is only
    #: in its memory, so it may not)
    restartable: bool = True
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def base(self) -> str:
        parts = urllib.parse.urlsplit(self.ready_url)
        return f"{parts.scheme}://{parts.netloc}"

    def start(self, timeout_s: float = 60) -> None:
        with self.log.open("ab") as log:
            self.started_at = time.perf_counter()
            # Its own session: Ctrl-C reaches only this script, which then stops the server.
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            with contextlib.suppress(OSError):  # refused until it listens
                reply = get(self.ready_url, 10)
                if reply is not None and reply.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {self.ready_url}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} has exited:\n{self.tail()}")

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the process and its children."""
        if self.process is None:
            return 0.0
        ticks = 0
        for pid in (self.process.pid, *descendants(self.process.pid)):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def memory(self) -> Memory:
        if self.process is None:
            return Memory()
        own = proc_status(self.process.pid)
        children = [proc_status(pid) for pid in descendants(self.process.pid)]
        return Memory(
            own.get("VmRSS", 0),
            own.get("VmHWM", 0),
            len(children),
            sum(c.get("VmRSS", 0) for c in children),
            sum(c.get("VmHWM", 0) for c in children),
        )


def load_average() -> str:
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


# --- timing ----------------------------------------------------------------------------------


@dataclass
class Reply:
    ms: float
    status: int
    body: bytes


def get(url: str, timeout_s: float) -> Reply | None:
    """One GET on a new connection; None when no answer came within ``timeout_s``."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            body = reply.read()
            status = reply.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except (TimeoutError, urllib.error.URLError) as exc:
        if isinstance(exc, TimeoutError) or isinstance(exc.reason, TimeoutError):
            return None
        raise
    return Reply((time.perf_counter() - start) * 1000, status, body)


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)
    timed_out: bool = False
    statuses: set[int] = field(default_factory=set)
    rows: int | None = None
    size: int = 0

    def median(self) -> float:
        return statistics.median(self.samples)

    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)]

    def cell(self, timeout_s: float) -> str:
        if self.timed_out and not self.samples:
            return f"timed out (>{timeout_s:g} s)"
        text = f"{self.median():.1f} / {self.p95():.1f} (n={len(self.samples)})"
        bad = sorted(s for s in self.statuses if s != 200)
        if bad:
            text += f" HTTP {','.join(map(str, bad))}"
        if self.timed_out:
            text += " +1 timed out"
        return text


def count_rows(body: bytes, path: tuple[str, ...]) -> int | None:
    """Rows in a JSON answer: the length of the list at ``path``."""
    try:
        value: Any = json.loads(body)
        for key in path:
            value = value[key]
        return len(value)
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class Measured:
    """The requests of one tool to one page."""

    server: Server
    url: str
    #: where the rows are in the JSON answer (() for the answer itself)
    rows_at: tuple[str, ...]
    timing: Timing = field(default_factory=Timing)
    spent_s: float = 0.0

    def done(self, args: argparse.Namespace) -> bool:
        """``--repeat`` requests made, ``--budget`` seconds spent, or one timed out."""
        timing = self.timing
        return timing.timed_out or len(timing.samples) >= args.repeat or self.spent_s >= args.budget

    def once(self, args: argparse.Namespace) -> None:
        reply = get(self.url, args.timeout)
        if reply is None:
            self.timing.timed_out = True
            if self.server.restartable:
                self.server.restart()  # it would go on reading Redis and skew what follows
            else:
                self.server.wait_ready(args.timeout * 4)  # one thread: wait for it to finish
            return
        self.timing.samples.append(reply.ms)
        self.timing.statuses.add(reply.status)
        self.spent_s += reply.ms / 1000
        if self.timing.rows is None:
            self.timing.rows = count_rows(reply.body, self.rows_at)
            self.timing.size = len(reply.body)


def measure(runs: list[Measured], args: argparse.Namespace) -> None:
    """The tools' requests in turn, so that the machine's load weighs on both alike."""
    while not all(run.done(args) for run in runs):
        for run in runs:
            if not run.done(args):
                run.once(args)


def ratio(other: Timing, bridge: Timing, timeout_s: float) -> str:
    """The other tool's median over jobbridge's ("-" without jobbridge figures)."""
    if not bridge.samples:
        return "-"
    if other.samples:
        return f"{other.median() / bridge.median():,.1f}x"
    return f">{timeout_s * 1000 / bridge.median():,.0f}x"


def print_table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """``--repeat``, ``--budget`` and ``--timeout``, which ``Measured`` reads."""
    parser.add_argument(
        "--repeat", type=int, default=20, help="requests per tool and page, at most (default 20)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="stop repeating a tool's page once this many seconds are spent (default 30)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for one answer before reporting it timed out (default 300)",
    )


# --- the run ---------------------------------------------------------------------------------


#: a benchmark's run: starts Redis and yields it at once (for the caller to stop), then works,
#: adding each server it starts to the list (for the caller to stop)
Run = Callable[[argparse.Namespace, Path, list[Server]], Iterator[RedisServer]]


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_benchmark(
    run: Run, args: argparse.Namespace, prefix: str, failing_as: str | None = None
) -> None:
    """Run ``run`` in a new working directory, then stop its servers and Redis and remove it
    all, also on SIGTERM. ``failing_as``: exit on a RuntimeError with that name, the message
    and every server's log tail (else the error propagates)."""
    signal.signal(signal.SIGTERM, _terminated)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    servers: list[Server] = []
    redis_server: RedisServer | None = None
    try:
        steps = run(args, workdir, servers)
        redis_server = next(steps)
        for _ in steps:
            pass
    except RuntimeError as exc:
        if failing_as is None:
            raise
        logs = "".join(f"\n--- {s.name} log ({s.log}):\n{s.tail()}" for s in servers)
        raise SystemExit(f"{failing_as}: {exc}{logs}") from None
    finally:
        for server in reversed(servers):
            server.stop()
        if redis_server is not None:
            redis_server.stop()
            shutil.rmtree(redis_server.workdir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
