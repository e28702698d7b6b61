"""``jobbridge demo`` as a user runs it: a subprocess with live Autumn, RQ and Celery workers.

Within 60 s its API shows completed and failed jobs in all three systems and one checkout
request fanned out to all three; Ctrl-C (SIGINT) leaves no process and no temporary file
behind; a taken port is one line and exit code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from jobbridge.dev.private_redis import free_port

#: what the demo has to show by then, counted from its start
DEADLINE_S = 60.0
SYSTEMS = {"autumn", "rq", "celery"}


@dataclass
class Demo:
    """A running ``jobbridge demo`` and what it printed."""

    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path
    tmpdir: Path
    started: float

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/admin"

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            body = response.read().decode()
        return json.loads(body) if path.startswith("/api/") else body


def _start(tmp_path: Path, *args: str) -> Demo:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBBRIDGE_")}
    # Everything the demo and its children put in the temp dir lands here, checked at the end.
    env["TMPDIR"] = str(tmpdir)
    port = free_port()
    stdout, stderr = tmp_path / "demo.out", tmp_path / "demo.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobbridge", "demo", "--port", str(port), *args],
            stdout=out,
            stderr=err,
            env=env,
        )
    return Demo(process, port, stdout, stderr, tmpdir, time.monotonic())


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _demo_processes(redis_url: str) -> list[psutil.Process]:
    """Processes started with the demo's layout (its children, theirs, RQ's work horses)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("JOBBRIDGE_DEMO_REDIS_URL") == redis_url:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return [process for process in found if _alive(process)]


@contextlib.contextmanager
def demo_cleanup(running: Demo) -> Iterator[Demo]:
    """Kill the demo and every descendant if the test leaves it up."""
    try:
        yield running
    finally:
        leftovers = _descendants(running.process.pid)
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
        for process in leftovers:
            if _alive(process):
                process.kill()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """The demo without ``--redis``; killed (with every descendant) if a test leaves it up."""
    with demo_cleanup(_start(tmp_path)) as running:
        yield running


def _wait_for_url(demo: Demo) -> str:
    while time.monotonic() - demo.started < DEADLINE_S:
        match = re.search(r"http://127\.0\.0\.1:\d+/admin/jobs", demo.output())
        if match:
            return match.group(0)
        assert demo.process.poll() is None, demo.output()
        time.sleep(0.1)
    raise AssertionError(f"no URL within {DEADLINE_S:g} s:\n{demo.output()}")


def _finished(counters: dict[str, Any]) -> tuple[int, int]:
    """Completed and failed jobs a source's counters show (kept ones where a window count is
    not known exactly: RQ's registries)."""
    completed = counters["completed_24h"]
    failed = counters["failed_7d"]
    if completed is None:
        completed = counters["completed_kept"]
    if failed is None:
        failed = counters["failed_kept"]
    return int(completed or 0), int(failed or 0)


def _wait_for_history(demo: Demo) -> dict[str, tuple[int, int]]:
    """Until every system shows completed and failed jobs: those counts, by system."""
    seen: dict[str, tuple[int, int]] = {}
    while time.monotonic() - demo.started < DEADLINE_S:
        assert demo.process.poll() is None, demo.output()
        try:
            answer = demo.get("/api/counters")
        except urllib.error.URLError:  # the URL is printed just before the server listens
            time.sleep(0.2)
            continue
        seen = {
            source["system"]: _finished(source["counters"])
            for source in answer["sources"]
            if source["up"]
        }
        if set(seen) == SYSTEMS and all(c > 0 and f > 0 for c, f in seen.values()):
            return seen
        time.sleep(1)
    raise AssertionError(f"after {DEADLINE_S:g} s: {seen}\n{demo.output()}")


#: the job names of the three legs of a checkout request
CHECKOUT_LEGS = ("charge_invoice", "build_invoice_pdf", "send_receipt")


def _snapshot_ids(demo: Demo, source: str) -> tuple[int, int, set[str]]:
    """A source's snapshot: its completed and failed totals, and its checkout requests.

    A checkout's correlation id comes from its row, or from its job page when the list does
    not carry it (Celery's result index keeps no arguments).
    """
    snapshot = demo.get(f"/api/sources/{source}/snapshot?per_page=100")
    lists = snapshot["lists"]
    legs = [
        item
        for name in ("enqueued", "running", "completed")
        for item in lists[name]["items"]
        if item["name"].endswith(CHECKOUT_LEGS)
    ]
    checkouts = set()
    for item in legs[:30]:
        correlation = item.get("correlation_id")
        if correlation is None:
            job_id = urllib.parse.quote(item["id"], safe="")
            correlation = demo.get(f"/api/sources/{source}/jobs/{job_id}")["correlation_id"]
        if str(correlation).startswith("checkout-"):  # Autumn's seed has invoices of its own
            checkouts.add(correlation)
    return lists["completed"]["total"], lists["failed"]["total"], checkouts


def _stop(demo: Demo) -> int:
    demo.process.send_signal(signal.SIGINT)
    try:
        return demo.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the demo did not stop within 40 s:\n{demo.output()}") from None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_demo_shows_three_live_systems_and_leaves_nothing_behind(demo: Demo) -> None:
    url = _wait_for_url(demo)
    assert url == f"http://127.0.0.1:{demo.port}/admin/jobs"
    redis_url = re.search(r"private Redis on (127\.0\.0\.1:\d+)", demo.output())
    assert redis_url, demo.output()
    layout_url = f"redis://{redis_url.group(1)}/0"

    counts = _wait_for_history(demo)
    assert set(counts) == SYSTEMS

    sources = {s["name"]: s["system"] for s in demo.get("/api/sources")["sources"]}
    assert sorted(sources.values()) == ["autumn", "celery", "rq"]
    checkouts = []
    for name in sources:
        completed, failed, ids = _snapshot_ids(demo, name)
        assert completed > 0 and failed > 0, (name, completed, failed)
        checkouts.append(ids)
    # One checkout request fanned out to a job in each system, under one correlation id.
    assert set.intersection(*checkouts), checkouts

    # The overview (its table is another helper's to shape): a row per source, with its system.
    overview = demo.get("/jobs")
    for name, system in sources.items():
        assert f'href="/admin/jobs/{name}"' in overview
        assert f'<td data-label="System">{system}</td>' in overview

    # Every descendant now (workers, prefork children, RQ's horse, redis-server), and any
    # process started with the demo's layout later, is gone once the demo has stopped.
    before = _descendants(demo.process.pid)
    assert len(before) >= 5, before
    assert _stop(demo) == 0, demo.output()
    assert [p for p in before if _alive(p)] == []
    assert _demo_processes(layout_url) == []
    assert sorted(os.listdir(demo.tmpdir)) == []
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(redis_url.group(1).split(":")[1]))) != 0
    assert "Traceback" not in demo.output(), demo.output()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_demo_on_a_given_redis_writes_only_under_its_prefix(tmp_path: Path, redis_url: str) -> None:
    demo = _start(tmp_path, "--redis", redis_url)
    try:
        _wait_for_url(demo)
        printed = demo.stdout.read_text()
        for pattern in ("jobbridge-demo:autumn:*", "jobbridge-demo:rq:*", "jobbridge-demo:celery:"):
            assert pattern in printed, printed
        # No Redis of its own: only the workers and the producer.
        assert "private Redis" not in printed
        _wait_for_history(demo)
        assert _stop(demo) == 0, demo.output()
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
            demo.process.wait()
    assert _demo_processes(redis_url) == []
    assert sorted(os.listdir(demo.tmpdir)) == []
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key.decode() for key in client.keys("*")]  # a private test database
    finally:
        client.close()
    assert keys
    assert [key for key in keys if not key.startswith("jobbridge-demo:")] == []


def _taken(tmp_path: Path, flag: str) -> tuple[int, list[str], str]:
    """Run the demo with ``flag`` on a port something listens on: exit code, stderr lines,
    stdout."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        args = ["--port", str(port)] if flag == "--port" else ["--port", str(free_port())]
        if flag == "--redis-port":
            args += ["--redis-port", str(port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBBRIDGE_")}
        env["TMPDIR"] = str(tmp_path)
        done = subprocess.run(
            [sys.executable, "-m", "jobbridge", "demo", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        return done.returncode, done.stderr.splitlines(), f"{port}|{done.stdout}"


@pytest.mark.slow
def test_a_taken_dashboard_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, lines, out = _taken(tmp_path, "--port")
    port, stdout = out.split("|", 1)
    assert code == 2
    assert len(lines) == 1, lines
    assert f"port {port} " in lines[0]
    assert "--port" in lines[0] and "make demo PORT=" in lines[0]
    assert stdout == ""
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_a_taken_redis_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, lines, out = _taken(tmp_path, "--redis-port")
    port, stdout = out.split("|", 1)
    assert code == 2
    assert len(lines) == 1, lines
    assert f"port {port} " in lines[0] and "--redis-port" in lines[0]
    assert stdout == ""
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_port_taken_after_the_check_ends_the_same_way(tmp_path: Path) -> None:
    """Taken between the check and the bind: the children it started are stopped, and the
    last line says what the check would have said."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # The check passes (a stand-in for a port taken just after it).
        code = (
            "import jobbridge.demo as demo; demo.is_free = lambda *args: True; "
            "from jobbridge.cli import main; main(prog_name='jobbridge')"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBBRIDGE_")}
        env["TMPDIR"] = str(tmp_path)
        done = subprocess.run(
            [sys.executable, "-c", code, "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    last = done.stderr.splitlines()[-1]
    assert f"port {port} " in last and "--port" in last and "make demo PORT=" in last
    assert "Traceback" not in done.stderr
    assert "started autumn-worker" in done.stdout
    assert os.listdir(tmp_path) == []
