"""The model as JSON-ready dicts: one shape for the API and the CLI's ``--json``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobbridge.model import (
    DONE_WORDS,
    ActionResult,
    AuditEntry,
    Counters,
    JobDetail,
    JobRecord,
    LifecycleEntry,
    Outcome,
    Page,
    Schedule,
    Snapshot,
    Worker,
)


def rfc3339(value: datetime | None) -> str | None:
    """Aware UTC datetime as RFC 3339 with a Z suffix, to whole seconds (as Autumn)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def job_json(job: JobRecord) -> dict[str, Any]:
    return {
        "source": job.source,
        "system": job.system,
        "id": job.id,
        "name": job.name,
        "queue": job.queue,
        "status": job.status.value,
        "raw_status": job.raw_status,
        "enqueued_at": rfc3339(job.enqueued_at),
        "scheduled_for": rfc3339(job.scheduled_for),
        "started_at": rfc3339(job.started_at),
        "finished_at": rfc3339(job.finished_at),
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "principal_id": job.principal_id,
        "correlation_id": job.correlation_id,
        "worker": job.worker,
        "payload_preview": job.payload_preview,
        "actions": [a.value for a in job.actions],
        "problem": job.problem,
        "new_id": job.new_id,
        "extra": dict(job.extra),
        "overdue_since": rfc3339(job.overdue_since),
        "entry": job.entry,
    }


def counters_json(counters: Counters) -> dict[str, Any]:
    return {
        "enqueued": counters.enqueued,
        "scheduled": counters.scheduled,
        "running": counters.running,
        "completed_24h": counters.completed_24h,
        "failed_7d": counters.failed_7d,
        "oldest_enqueued_age_s": counters.oldest_enqueued_age_s,
        "blocked": counters.blocked,
        "running_overdue": counters.running_overdue,
        "completed_kept": counters.completed_kept,
        "failed_kept": counters.failed_kept,
        "canceled": counters.canceled,
        "problems": list(counters.problems),
        "queues": [
            {
                "name": q.name,
                "enqueued": q.enqueued,
                "oldest_enqueued_age_s": q.oldest_enqueued_age_s,
            }
            for q in counters.queues
        ],
    }


def page_json(page: Page) -> dict[str, Any]:
    return {
        "items": [job_json(j) for j in page.items],
        "total": page.total,
        "page": page.page,
        "per_page": page.per_page,
        "flagged": page.skipped,
    }


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "schedule": schedule.schedule,
        "next_run_at": rfc3339(schedule.next_run_at),
        "last_status": schedule.last_status,
    }


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "source": snapshot.source,
        "system": snapshot.system,
        "taken_at": rfc3339(snapshot.taken_at),
        "counters": counters_json(snapshot.counters),
        "lists": {name.value: page_json(page) for name, page in snapshot.lists.items()},
        "schedules": [schedule_json(s) for s in snapshot.schedules],
        "history_limit": snapshot.history_limit,
        "workers": None if snapshot.workers is None else [worker_json(w) for w in snapshot.workers],
    }


def worker_json(worker: Worker) -> dict[str, Any]:
    return {
        "name": worker.name,
        "state": worker.state,
        "queues": list(worker.queues),
        "current_job": worker.current_job,
        "birth": rfc3339(worker.birth),
        "last_heartbeat": rfc3339(worker.last_heartbeat),
        "successful": worker.successful,
        "failed": worker.failed,
        "hostname": worker.hostname,
        "pid": worker.pid,
        "problem": worker.problem,
        "pool": worker.pool,
        "concurrency": worker.concurrency,
        "active": worker.active,
        "reserved": worker.reserved,
    }


def lifecycle_json(entry: LifecycleEntry) -> dict[str, Any]:
    return {
        "job_id": entry.job_id,
        "status": entry.status.value,
        "at": rfc3339(entry.at),
        "actor": entry.actor,
        "new_id": entry.new_id,
    }


def detail_json(detail: JobDetail) -> dict[str, Any]:
    data = job_json(detail.job)
    data["payload"] = detail.payload
    data["payload_kind"] = detail.payload_kind
    data["lifecycle"] = [lifecycle_json(e) for e in detail.lifecycle]
    return data


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": rfc3339(entry.at),
        "actor": entry.actor,
        "source": entry.source,
        "job_id": entry.job_id,
        "action": entry.action,
        "outcome": entry.outcome,
        "new_id": entry.new_id,
        "message": entry.message,
        "entry": entry.entry,
    }


def action_json(result: ActionResult) -> dict[str, Any]:
    """``{"outcome": "retried", "id", "new_id"?}`` on success, else ``{"error", "message"}``."""
    if result.outcome is Outcome.DONE:
        data: dict[str, Any] = {"outcome": DONE_WORDS[result.action], "id": result.job_id}
        if result.new_id:
            data["new_id"] = result.new_id
        data["message"] = result.message
        return data
    # A refused outcome's own word is the API's error code (not_found, wrong_state, ...).
    return {"error": result.outcome.value, "message": result.message, "id": result.job_id}
