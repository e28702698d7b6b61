"""Issue 15, class 8 (a suite that holds under load): the worker-process harness.

On a loaded machine an ``rq worker --burst`` that logged "done, quitting" hung for a minute in
its teardown (RQ stops its pub/sub thread with an unbounded join after the thread has read
the UNSUBSCRIBE reply; ``tests/rq/late_stop.py`` takes that path every time). The harness
stops such a worker and counts its work, still fails a worker that never finished, stops a
pool together, and never gives a worker a pipe to fill.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Worker
from rq.job import Job

from tests.integration.processes import WorkerProcess, scaled, spawn, stop_all
from tests.rq import tasks as rq_tasks
from tests.rq.rq_support import EXIT_GRACE, WorkerPool, enqueue, ran_ids

pytestmark = pytest.mark.redis

LATE_STOP = ("--worker-class", "tests.rq.late_stop.LateStopWorker")


def test_class8_a_burst_worker_hung_after_done_is_stopped_and_its_work_counts(
    sync_redis: redis.Redis, rq_workers: WorkerPool
) -> None:
    jobs = [enqueue(sync_redis, rq_tasks.add, n, 1) for n in range(3)]
    worker = rq_workers.start(burst=True, extra=LATE_STOP)
    started = time.monotonic()
    worker.assert_clean_exit()
    elapsed = time.monotonic() - started
    assert worker.stopped_after_done, worker.describe()
    assert not worker.alive
    # RQ would have held it for its 60 s pub/sub sleep; the harness waits its grace.
    assert elapsed < scaled(EXIT_GRACE + 20), elapsed
    assert [Job.fetch(j.id, connection=sync_redis).return_value() for j in jobs] == [1, 2, 3]
    assert sorted(ran_ids(sync_redis)) == sorted(j.id for j in jobs)
    assert Worker.all(connection=sync_redis) == []  # it deregistered before the hang


def test_class8_a_worker_hung_in_its_teardown_is_stopped_without_the_warm_grace(
    sync_redis: redis.Redis, rq_workers: WorkerPool
) -> None:
    worker = rq_workers.start(extra=LATE_STOP)
    worker.wait_registered(sync_redis)
    started = time.monotonic()
    worker.stop()
    elapsed = time.monotonic() - started
    assert not worker.alive
    assert "cold shut down" in worker.logs(), worker.describe()
    # It ran nothing more once its teardown began: the follow-up came without the grace.
    assert elapsed < scaled(worker.GRACE), (elapsed, worker.describe())


def test_class8_a_burst_worker_that_never_finishes_fails_with_its_log(
    sync_redis: redis.Redis, rq_workers: WorkerPool
) -> None:
    job = enqueue(sync_redis, rq_tasks.sleep, 60)
    worker = rq_workers.start(burst=True)
    with pytest.raises(AssertionError) as failed:
        worker.wait_exit(timeout=3)
    message = str(failed.value)
    assert "did not finish" in message and worker.name in message
    assert job.id in message  # its log, which names the job it is stuck on
    assert not worker.stopped_after_done
    worker.stop(grace=0.5)
    assert not worker.alive
    with pytest.raises(ProcessLookupError):  # nor its work horse
        os.killpg(worker.process.pid, 0)
    assert Job.fetch(job.id, connection=sync_redis).get_status().value != "finished"


STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.mark.slow
def test_class8_a_pool_of_stubborn_workers_is_stopped_together(tmp_path: Path) -> None:
    workers = [
        WorkerProcess(f"s{n}", spawn([sys.executable, "-c", STUBBORN], os.environ, log), log)
        for n in range(3)
        for log in [tmp_path / f"s{n}.log"]
    ]
    for worker in workers:
        deadline = time.monotonic() + scaled(10)
        while "up" not in worker.logs() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "up" in worker.logs(), worker.describe()
    started = time.monotonic()
    codes = stop_all(workers, grace=1)
    elapsed = time.monotonic() - started
    assert codes == [-signal.SIGKILL] * 3
    # Each takes its grace, the follow-up wait and a SIGKILL: one at a time would be 3x.
    one = 1 + WorkerProcess.FOLLOW_UP[1]
    assert elapsed < scaled(one) * 1.75, (elapsed, scaled(one))


@pytest.mark.slow
def test_class8_a_worker_writing_a_lot_never_blocks_on_its_output(tmp_path: Path) -> None:
    chatty = "import sys\nfor _ in range(64):\n    sys.stdout.write('x' * 16384 + '\\n')\n"
    log = tmp_path / "chatty.log"
    process = spawn([sys.executable, "-c", chatty], os.environ, log)
    # A pipe nobody reads holds 64 KiB: the writer would block forever at 1 MiB.
    assert process.wait(timeout=scaled(20)) == 0
    assert log.stat().st_size == 64 * 16385
