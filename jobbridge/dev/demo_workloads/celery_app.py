"""The demo's Celery app: the worker runs it (``celery -A jobbridge.dev.demo_workloads.celery_app
worker -E``) and the producer sends its tasks by name through :func:`make_app`.

Configured for what jobbridge reads: extended result metas (name, args, kwargs, worker, queue),
STARTED metas, task events, and the sent event of each task. JSON only: a worker that accepts
pickle refuses to run as root, and the demo needs neither.
"""

from __future__ import annotations

import random
import time

from celery import Celery, Task  # type: ignore[import-untyped]

from jobbridge.dev.demo_workloads import CELERY_QUEUES, DemoLayout

#: the tasks' registered names start with this (Celery names a task after its module)
PREFIX = "jobbridge.dev.demo_workloads.celery_app."
#: the queue the bulk sends go to (``celery`` takes the rest)
BULK_QUEUE = CELERY_QUEUES[1]


def make_app(layout: DemoLayout) -> Celery:
    """A Celery app on the layout's Redis, as the worker and the producer both configure it."""
    app = Celery("jobbridge.dev.demo_workloads.celery_app", set_as_current=False)
    prefix = {"global_keyprefix": layout.celery_prefix} if layout.celery_prefix else {}
    app.conf.update(
        broker_url=layout.redis_url,
        result_backend=layout.redis_url,
        broker_transport_options=prefix,
        result_backend_transport_options=prefix,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_extended=True,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_routes={PREFIX + "send_newsletter": {"queue": BULK_QUEUE}},
        task_default_queue=CELERY_QUEUES[0],
        worker_hijack_root_logger=False,
    )
    return app


app = make_app(DemoLayout.from_env())


@app.task
def send_welcome_email(*, to: str, **ident: object) -> str:
    """Quick and successful."""
    time.sleep(random.uniform(0.05, 0.3))
    return f"sent to {to}"


@app.task
def send_newsletter(*, issue: str, recipients: int, seconds: float, **ident: object) -> int:
    """The slow one, on the bulk queue."""
    time.sleep(seconds)
    return recipients


@app.task(bind=True, max_retries=3, default_retry_delay=2)
def deliver_webhook(self: Task, *, url: str, fail_attempts: int, **ident: object) -> str:
    """Fails on its first ``fail_attempts`` runs and retries itself in 2 s; more failures than
    retries end in FAILURE."""
    attempt = int(self.request.retries) + 1
    if attempt <= fail_attempts:
        raise self.retry(exc=ConnectionError(f"{url} answered 503 (attempt {attempt})"))
    return f"delivered to {url} on attempt {attempt}"


@app.task
def render_template(*, template: str, message: str, **ident: object) -> None:
    """Always fails, at once (no retries)."""
    raise KeyError(f"template {template!r}: {message}")


@app.task
def send_receipt(*, order: str, to: str, **ident: object) -> str:
    """One leg of a checkout request (an Autumn job and an RQ job share its ids)."""
    time.sleep(random.uniform(0.1, 0.4))
    return f"receipt for {order} sent to {to}"
