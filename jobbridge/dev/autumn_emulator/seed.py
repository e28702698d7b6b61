"""A realistic mix of Autumn jobs for the demo, written by running the producer and a worker."""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis

from jobbridge.dev.autumn_emulator.producer import Autumn
from jobbridge.dev.autumn_emulator.records import DEFAULT_PREFIX
from jobbridge.dev.autumn_emulator.worker import BUILTIN_HANDLERS, Handler, Worker, noop

# ---------------------------------------------------------------------------------------------
# Demo data
# ---------------------------------------------------------------------------------------------

SEED_QUEUES = ["critical", "default", "low"]


def _seed_handlers() -> dict[str, Handler]:
    handlers = dict(BUILTIN_HANDLERS)
    for name in (
        "send_welcome_email",
        "charge_invoice",
        "generate_report",
        "resize_avatar",
        "sync_crm_contact",
        "rebuild_search_index",
        "render_comment",
    ):
        handlers[name] = noop
    return handlers


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def reset_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix:`` (the demo's own prefix)."""
    deleted = 0
    batch: list[bytes | str] = []
    for key in client.scan_iter(match=_escape_glob(prefix) + ":*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.delete(*batch))
            batch = []
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


def seed(
    client: redis.Redis, prefix: str = DEFAULT_PREFIX, *, reset: bool = True
) -> dict[str, int]:
    """Write a realistic mix by running the producer and a worker; counts per key kind."""
    if reset:
        reset_prefix(client, prefix)
    app = Autumn(client, prefix)
    worker = Worker(app, SEED_QUEUES, handlers=_seed_handlers())

    def ident(n: int) -> dict[str, Any]:
        return {"principal_id": f"user-{100 + n}", "correlation_id": f"req-{uuid.uuid4().hex[:12]}"}

    # 1. Work that runs now: completions, failures, a retry in backoff, a malformed record.
    for n, (name, queue) in enumerate(
        [
            ("send_welcome_email", "critical"),
            ("charge_invoice", "critical"),
            ("generate_report", "default"),
            ("resize_avatar", "low"),
            ("send_welcome_email", "default"),
            ("generate_report", "low"),
        ]
    ):
        app.enqueue(name, {**ident(n), "n": n, "note": "a/b path"}, queue=queue)
    app.enqueue(
        "always_fail",
        {
            **ident(10),
            "message": "<script>alert(1)</script>",
            "html": "<img src=x onerror=alert(1)>",
        },
        max_attempts=1,
    )
    app.enqueue(
        "render_comment",
        {"principal_id": 42, "request_id": "req-render", "body": "<img src=x onerror=alert(1)>"},
        queue="low",
    )
    app.enqueue("panic", {**ident(11), "message": "index out of bounds: the len is 0"})
    app.enqueue("import_legacy_csv", {**ident(12), "file": "s3://bucket/legacy.csv"})
    app.enqueue(
        "fail_times",
        {**ident(13), "fail_times": 3, "invoice": "INV-2024-001"},
        queue="critical",
        initial_backoff_ms=600_000,
    )
    malformed_id = str(uuid.uuid4())
    # A third-party tool wrote "attempt" as a string: cjson accepts it, serde does not
    # (docs/autumn.md §5.1).
    bad = json.loads(app.encode({"id": malformed_id, "name": "charge_invoice", "payload": {}}))
    bad.update(attempt="1", max_attempts=5, initial_backoff_ms=250, enqueued_at_ms=app.now_ms())
    client.set(app.record_key(malformed_id), json.dumps(bad, separators=(",", ":")))
    client.lpush(app.queue_key("default"), malformed_id)
    while worker.run_once():
        pass

    # 2. A running job (long visibility) holding a concurrency slot, and a parked sibling.
    runner = Worker(
        Autumn(client, prefix, visibility_timeout_ms=3_600_000),
        ["low"],
        handlers=_seed_handlers(),
    )
    for n in range(2):
        app.enqueue(
            "sync_crm_contact",
            {**ident(20 + n), "account_id": "acct-1", "contact": n},
            queue="low",
            concurrency_limit=1,
            concurrency_scope_field="account_id",
        )
    runner.claim()
    runner.claim()  # parks the sibling in P:blocked

    # 3. Scheduled jobs and a unique job (its duplicate is coalesced).
    for n, (queue, delay) in enumerate(
        [("default", 3_600_000), ("low", 21_600_000), ("critical", 86_400_000)]
    ):
        app.enqueue(
            "generate_report", {**ident(30 + n), "period": "daily"}, queue=queue, delay_ms=delay
        )
    for _ in range(2):
        app.enqueue(
            "rebuild_search_index",
            {"tenant": "acme", **ident(40)},
            unique="running",
            unique_by=["tenant"],
        )

    # 4. Left enqueued.
    for n, queue in enumerate(["critical", "default", "default", "low", "low"]):
        app.enqueue(
            "send_welcome_email", {**ident(50 + n), "email": f"user{n}@example.com"}, queue=queue
        )

    counts = {"queue:" + q: int(client.llen(app.queue_key(q))) for q in SEED_QUEUES}
    counts["processing"] = int(client.zcard(app.processing_key))
    counts["delayed"] = int(client.zcard(app.delayed_key))
    counts["blocked"] = int(client.zcard(app.blocked_key))
    counts["completed"] = int(client.llen(app.completed_key))
    counts["dead"] = int(client.llen(app.dead_key))
    return counts
