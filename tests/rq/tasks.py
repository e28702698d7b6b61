"""Tasks the RQ integration tests enqueue; RQ workers import them by dotted path
(``tests.rq.tasks.add``), so the worker subprocess runs with ``PYTHONPATH`` at the checkout.

Under a worker, most tasks also leave a trace a test can check after the worker is gone: their
job id pushed onto the Redis list ``RAN_KEY`` through the worker's own connection (so "ran" and
"ran exactly once" can be counted), or a marker file.
"""

from __future__ import annotations

import time
from pathlib import Path

from rq import get_current_job

#: the Redis list every task pushes its job id onto when it runs under a worker
RAN_KEY = "test:ran"


def _record_run() -> str | None:
    """Push the current job's id onto ``RAN_KEY``; the id (None outside a worker)."""
    job = get_current_job()
    if job is None:
        return None
    job.connection.rpush(RAN_KEY, job.id)
    return job.id


def add(a: int, b: int = 0, **kwargs: object) -> int:
    """Succeeds with the sum (extra keyword arguments, like a principal id, are ignored)."""
    _record_run()
    return a + b


def fail(message: str = "boom", **kwargs: object) -> None:
    """Always fails, with a recognisable message in its traceback (extra keyword arguments,
    like a correlation id, are ignored)."""
    _record_run()
    raise ValueError(message)


def sleep(seconds: float) -> float:
    """Runs for a while, so a test can look at it while it is started."""
    _record_run()
    time.sleep(seconds)
    return seconds


def echo(value: object) -> object:
    """Returns its argument unchanged (a structured return value)."""
    _record_run()
    return value


def record() -> str | None:
    """The race test's fast task: only records that it ran; returns its job id."""
    return _record_run()


def touch(path: str) -> str | None:
    """Creates ``path`` (a marker that the job ran) and records the run."""
    Path(path).touch()
    return _record_run()


def sleep_then(seconds: float, value: object = None) -> object:
    """Records the run, sleeps, returns ``value``: a job that stays running for a while."""
    _record_run()
    time.sleep(seconds)
    return value


def fail_once(marker: str, value: object = "ok") -> object:
    """Fails the first time (creating ``marker``), then succeeds with ``value``.

    A failed job whose retry runs to completion: the retry copies the same arguments.
    """
    _record_run()
    path = Path(marker)
    if not path.exists():
        path.touch()
        raise ValueError(f"first run fails (marker {marker} created)")
    return value
