"""The demo's producer: ``python -m jobbridge.dev.demo_workloads.producer``.

First a burst of history in every system (successes, terminal failures, retries, delayed and
slow jobs), so the dashboard shows completed and failed work within seconds; then a steady mix
of a few jobs a second until SIGTERM or SIGINT. Every job carries ``principal_id`` and
``correlation_id`` as top-level payload fields or keyword arguments; a "checkout" request fans
out to an Autumn job, an RQ job and a Celery task under one correlation id.
"""

from __future__ import annotations

import random
import signal
import threading
import uuid
from datetime import timedelta
from typing import Any

import redis
from rq import Queue, Retry

from jobbridge.dev import autumn_emulator as emulator
from jobbridge.dev.demo_workloads import AUTUMN_QUEUES, RQ_QUEUES, DemoLayout, rq_tasks
from jobbridge.dev.demo_workloads.celery_app import PREFIX, make_app

#: above this many waiting jobs (nothing serves it), no more go to Autumn's ``low`` queue
LOW_BACKLOG_CAP = 300

Ident = dict[str, str]


class Producer:
    """Enqueues the demo's jobs into all three systems."""

    def __init__(self, layout: DemoLayout, rng: random.Random) -> None:
        self.rng = rng
        self.client = redis.Redis.from_url(layout.redis_url)
        self.autumn = emulator.Autumn(self.client, layout.autumn_prefix)
        self.rq = {name: Queue(name, connection=self.client) for name in RQ_QUEUES}
        self.celery = make_app(layout)
        self.n = 0

    def close(self) -> None:
        self.celery.close()
        self.client.close()

    def ident(self, kind: str = "req") -> Ident:
        self.n += 1
        return {
            "principal_id": f"user-{self.rng.randint(100, 140)}",
            "correlation_id": f"{kind}-{uuid.uuid4().hex[:10]}",
        }

    # -- one job of each kind, per system ---------------------------------------------------------
    def autumn_job(self, kind: str, ident: Ident) -> None:
        queue = self.rng.choice(AUTUMN_QUEUES)
        if queue == "low" and self.client.llen(self.autumn.queue_key("low")) > LOW_BACKLOG_CAP:
            queue = "default"
        enqueue = self.autumn.enqueue
        if kind == "ok":
            enqueue("send_welcome_email", {**ident, "email": f"u{self.n}@example.com"}, queue=queue)
        elif kind == "fail":
            enqueue(
                "always_fail",
                {**ident, "message": f"upstream returned 502 (#{self.n})"},
                queue="default",
                max_attempts=1,
            )
        elif kind == "retry":
            fails = self.rng.choice((1, 2, 5))
            enqueue(
                "fail_times",
                {**ident, "fail_times": fails, "invoice": f"INV-{self.n:05d}"},
                queue="critical",
                max_attempts=3,
                initial_backoff_ms=2000,
            )
        elif kind == "delayed":
            delay = self.rng.randint(5_000, 90_000)
            enqueue("generate_report", {**ident, "period": "hourly"}, delay_ms=delay)
        elif kind == "slow":
            enqueue("sleep", {**ident, "ms": self.rng.randint(3000, 8000)}, queue="default")
        elif kind == "unique":
            # a second enqueue while the first is pending is coalesced (returns None)
            for _ in range(2):
                enqueue(
                    "rebuild_search_index",
                    {**ident, "tenant": self.rng.choice(("acme", "globex"))},
                    unique="running",
                    unique_by=["tenant"],
                )
        else:  # limited: one at a time per account (the seed's running job holds acct-1's slot)
            enqueue(
                "sync_crm_contact",
                {**ident, "account_id": f"acct-{self.rng.randint(2, 4)}"},
                concurrency_limit=1,
                concurrency_scope_field="account_id",
            )

    def rq_job(self, kind: str, ident: Ident) -> None:
        queue = self.rq[self.rng.choice(RQ_QUEUES[:2])]
        report = f"report-{self.n:05d}"
        if kind == "ok":
            queue.enqueue(rq_tasks.render_report, report=report, **ident)
        elif kind == "fail":
            queue.enqueue(rq_tasks.broken_report, report=report, message="no such tenant", **ident)
        elif kind == "retry":
            fails, allowed = self.rng.choice(((1, 2), (2, 2), (5, 2)))
            queue.enqueue(
                rq_tasks.flaky_report,
                report=report,
                fail_attempts=fails,
                retry=Retry(max=allowed, interval=[2, 4]),
                meta={"max_retries": allowed},
                **ident,
            )
        elif kind == "delayed":
            delay = timedelta(seconds=self.rng.randint(5, 90))
            queue.enqueue_in(delay, rq_tasks.render_report, report=report, **ident)
        elif kind == "slow":
            self.rq["low"].enqueue(
                rq_tasks.export_csv,
                rows=self.rng.randint(1_000, 90_000),
                seconds=self.rng.uniform(3, 8),
                job_timeout=60,
                **ident,
            )
        else:
            queue.enqueue(rq_tasks.render_report, report=report, pages=1, **ident)

    def celery_task(self, kind: str, ident: Ident) -> None:
        send = self.celery.send_task
        kwargs: dict[str, Any]
        if kind == "ok":
            kwargs = {"to": f"u{self.n}@example.com", **ident}
            send(PREFIX + "send_welcome_email", kwargs=kwargs)
        elif kind == "fail":
            kwargs = {"template": "receipt_v2", "message": "missing variable 'total'", **ident}
            send(PREFIX + "render_template", kwargs=kwargs)
        elif kind == "retry":
            fails = self.rng.choice((1, 2, 9))
            kwargs = {"url": f"https://hooks.example.com/{self.n}", "fail_attempts": fails, **ident}
            send(PREFIX + "deliver_webhook", kwargs=kwargs)
        elif kind == "delayed":
            kwargs = {"to": f"u{self.n}@example.com", **ident}
            send(PREFIX + "send_welcome_email", kwargs=kwargs, countdown=self.rng.randint(5, 60))
        elif kind == "slow":
            kwargs = {"issue": f"{self.n}", "recipients": 5000, "seconds": 6.0, **ident}
            send(PREFIX + "send_newsletter", kwargs=kwargs)
        else:
            kwargs = {"to": f"u{self.n}@example.com", **ident}
            send(PREFIX + "send_welcome_email", kwargs=kwargs)

    def checkout(self) -> None:
        """One request fanning out to all three systems under one correlation id."""
        ident = self.ident("checkout")
        order = f"ord-{self.n:05d}"
        self.autumn.enqueue("charge_invoice", {**ident, "order": order}, queue="critical")
        self.rq["high"].enqueue(rq_tasks.build_invoice_pdf, order=order, **ident)
        kwargs = {"order": order, "to": f"buyer{self.n}@example.com", **ident}
        self.celery.send_task(PREFIX + "send_receipt", kwargs=kwargs)

    def one_of_each(self, kind: str) -> None:
        self.autumn_job(kind, self.ident())
        self.rq_job(kind, self.ident())
        self.celery_task(kind, self.ident())

    # -- the two phases ---------------------------------------------------------------------------
    def seed(self, reset_autumn: bool) -> None:
        """History first: the emulator's own mix for Autumn, and a burst in every system."""
        emulator.seed(self.client, self.autumn.prefix, reset=reset_autumn)
        burst = ["ok"] * 6 + ["fail"] * 3 + ["retry"] * 2 + ["delayed"] * 2 + ["slow", "unique"]
        for kind in burst:
            self.one_of_each(kind)
        for _ in range(3):
            self.checkout()

    def step(self) -> None:
        """One step of the steady mix."""
        roll = self.rng.random()
        if roll < 0.15:
            self.checkout()
            return
        kind = self.rng.choices(
            ("ok", "fail", "retry", "delayed", "slow", "unique", "limited"),
            weights=(55, 8, 10, 10, 3, 5, 9),
        )[0]
        system = self.rng.choice((self.autumn_job, self.rq_job, self.celery_task))
        system(kind, self.ident())


def main() -> int:
    """Seed, then produce until a signal arrives."""
    layout = DemoLayout.from_env()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    producer = Producer(layout, random.Random(7))
    try:
        producer.seed(reset_autumn=True)
        while not stop.wait(producer.rng.uniform(0.15, 0.6)):
            producer.step()
    finally:
        producer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
