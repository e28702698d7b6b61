"""``serve --redis`` started before RQ was there: the RQ worker that registers later becomes a
source of the running server without a restart (the API's sources, the overview, the source's
own snapshot), and the log says so once however many background detections follow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobbridge.dev.private_redis import free_port
from tests.integration.processes import ROOT
from tests.rq.rq_support import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: seconds between the server's background detections here (the default is 30)
INTERVAL_S = 0.5
DETECTED = "detected rq at prefix 'rq'"


@contextmanager
def serving(redis_url: str, log_path: Path) -> Iterator[str]:
    """A real ``jobbridge serve --redis URL`` process; yields its base URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JOBBRIDGE_", "RQ_"))},
        "PYTHONPATH": str(ROOT),
        "JOBBRIDGE_DETECT_INTERVAL_S": str(INTERVAL_S),
    }
    command = [sys.executable, "-m", "jobbridge", "serve", "--redis", redis_url]
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert server.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return True
        except OSError:
            return False

    try:
        wait_for(up, "serve to answer", timeout=30, every=0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=15) as reply:
        return reply.status, reply.read().decode()


def source_names(base: str) -> list[str]:
    return [s["name"] for s in json.loads(get(f"{base}/admin/api/sources")[1])["sources"]]


def test_an_rq_worker_started_after_serve_becomes_a_source_without_a_restart(
    sync_redis, rq_workers, redis_url, tmp_path
) -> None:
    log_path = tmp_path / "serve.log"
    with serving(redis_url, log_path) as base:
        # Nothing there at start-up: the fallback, Autumn's default prefix.
        assert source_names(base) == ["autumn"], log_path.read_text()
        assert DETECTED not in log_path.read_text()

        worker = rq_workers.start(["default"])
        worker.wait_registered(sync_redis)
        assert not sync_redis.exists("rq:queues")  # found from its worker alone

        wait_for(lambda: "rq" in source_names(base), "the rq source to appear", timeout=30)
        assert source_names(base) == ["autumn", "rq"]
        counters = json.loads(get(f"{base}/admin/api/counters")[1])
        assert [(s["name"], s["system"], s["up"]) for s in counters["sources"]] == [
            ("autumn", "autumn", True),
            ("rq", "rq", True),
        ]
        status, overview = get(f"{base}/admin/jobs")
        assert status == 200 and "/admin/jobs/rq" in overview
        snapshot = json.loads(get(f"{base}/admin/api/sources/rq/snapshot")[1])
        assert worker.name in [w["name"] for w in snapshot["workers"]], snapshot["workers"]
        status, _ = get(f"{base}/admin/jobs/rq")
        assert status == 200

        # More background detections find RQ again: said once, added once.
        rounds_before = log_path.read_text().count(DETECTED)
        time.sleep(INTERVAL_S * 6)
        assert source_names(base) == ["autumn", "rq"]
    log = log_path.read_text()
    assert rounds_before == 1 and log.count(DETECTED) == 1, log
    line = next(line for line in log.splitlines() if DETECTED in line)
    assert "key rq:workers" in line and "now watching source rq" in line, line
