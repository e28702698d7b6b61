"""A small real Celery app on Redis, for jobbridge's Celery tests (the demo has its own:
jobbridge/dev/demo_workloads/celery_app.py).

The broker and the result backend come from the environment (never a shared Redis on 6379)::

    export CELERY_BROKER_URL=redis://127.0.0.1:6390/0
    export CELERY_RESULT_BACKEND=redis://127.0.0.1:6390/0   # optional: defaults to the broker
    celery -A examples.celery_app worker -l info -P solo -Q celery,mail

Run it from the repository root (or with ``PYTHONPATH`` pointing there). Add ``-E`` for task
events and ``-P prefork -c 2`` to run two tasks at once (needed to terminate a running task).

Tasks that should leave a trace in Redis write to the broker's database: ``record`` pushes its
task id onto ``RAN_KEY`` (so "ran exactly once" can be counted), ``flaky`` counts its calls
under ``FLAKY_KEY``. ``make_app`` builds the same configuration without the tasks, for a
client that only sends tasks by name and reads their results.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery, Task, signals

#: env vars the app reads
BROKER_ENV = "CELERY_BROKER_URL"
BACKEND_ENV = "CELERY_RESULT_BACKEND"
#: the Redis list ``record`` pushes its task id onto
RAN_KEY = "test:celery:ran"
#: ``flaky`` counts its runs for ``key`` in ``FLAKY_KEY.format(key)``
FLAKY_KEY = "test:celery:flaky:{0}"
#: the queue ``send_email`` is routed to
MAIL_QUEUE = "mail"
#: task names are the module's dotted path plus the function name (Celery's own default)
PREFIX = "examples.celery_app."


def task_name(short: str) -> str:
    """The registered name of one of this module's tasks: ``add`` -> ``examples.celery_app.add``."""
    return PREFIX + short


def make_app(broker_url: str | None, result_backend: str | None = None) -> Celery:
    """A Celery app configured as the worker's, with no tasks registered.

    Args:
        broker_url: the Redis broker (``redis://host:port/db``).
        result_backend: the Redis result backend; defaults to ``broker_url``.
    """
    app = Celery("examples.celery_app", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        result_backend=result_backend or broker_url,
        broker_connection_retry_on_startup=True,
        # JSON on the wire, but tests may publish pickled messages by hand.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json", "pickle"],
        result_accept_content=["json", "pickle"],
        # What jobbridge reads: extended metas (name/args/kwargs/worker/queue), STARTED metas
        # and the task events.
        result_extended=True,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_routes={task_name("send_email"): {"queue": MAIL_QUEUE}},
        worker_redirect_stdouts_level="INFO",
    )
    return app


app = make_app(
    os.environ.get(BROKER_ENV),
    os.environ.get(BACKEND_ENV) or os.environ.get(BROKER_ENV),
)


@signals.celeryd_init.connect
def _require_broker(**_: Any) -> None:
    # Without a URL Celery would fall back to AMQP on localhost and retry for ever. Celery logs
    # and swallows a receiver's exceptions, so exit instead of raising.
    if not os.environ.get(BROKER_ENV):
        raise SystemExit(f"set {BROKER_ENV} to a private Redis, e.g. redis://127.0.0.1:6390/0")


_clients: dict[int, redis.Redis] = {}


def _redis() -> redis.Redis:
    """A client of the broker's database, one per process (prefork children fork after import)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(app.conf.broker_url)
    return _clients[pid]


@app.task
def add(a: int, b: int) -> int:
    """Succeeds with the sum (also the first link of a chain: ``add.s(1, 2) | mul.s(10)``)."""
    return a + b


@app.task
def mul(x: int, y: int) -> int:
    """Succeeds with the product; takes the previous result first in a chain."""
    return x * y


@app.task
def fail(message: str = "boom") -> None:
    """Always fails with ``ValueError(message)``, so the traceback is recognisable."""
    raise ValueError(message)


@app.task
def sleep(seconds: float) -> float:
    """Runs for ``seconds``: something to see as STARTED, revoke or terminate."""
    time.sleep(seconds)
    return seconds


@app.task(bind=True)
def flaky(self: Task, key: str) -> int:
    """Fails on its first run for ``key``, succeeds afterwards (for retry-from-outside tests)."""
    runs = int(_redis().incr(FLAKY_KEY.format(key)))
    if runs == 1:
        raise RuntimeError(f"flaky {key}: first run fails")
    return runs


@app.task(bind=True, max_retries=None)
def retrying(self: Task, n: int, countdown: float = 1.0) -> int:
    """Retries itself ``n`` times (RETRY state, ETA message) then succeeds with ``n``."""
    if self.request.retries < n:
        raise self.retry(
            exc=RuntimeError(f"retry {self.request.retries + 1} of {n}"), countdown=countdown
        )
    return int(self.request.retries)


@app.task(bind=True)
def record(self: Task, tag: str = "") -> str:
    """Pushes its task id onto ``RAN_KEY`` and returns ``tag``."""
    _redis().rpush(RAN_KEY, self.request.id)
    return tag


@app.task
def send_email(to: str) -> str:
    """Routed to the ``mail`` queue (``task_routes``): runs only on a worker consuming it."""
    return f"sent to {to}"


@app.task(ignore_result=True)
def quiet(seconds: float = 0.0, message: str = "") -> None:
    """Stores no result (``ignore_result``): only its events tell that it ran, and how. Runs
    for ``seconds``, then fails with ``ValueError(message)`` when a message is given."""
    time.sleep(seconds)
    if message:
        raise ValueError(message)
