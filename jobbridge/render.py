"""Plain-text tables for the terminal.

Job data is attacker-controlled: every value goes through ``jobbridge.text.clean``, which marks
control characters (terminal escape sequences among them), so a job name cannot repaint an
operator's terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jobbridge.model import JobDetail, JobRecord, QueueCounters, Snapshot, Worker, list_title
from jobbridge.text import age, clean, clean_block, error_summary, oldest_age
from jobbridge.web.job_columns import attempts_label, duration


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def _job_row(job: JobRecord) -> list[str]:
    attempts = job.attempts_text or "-"
    moment = job.scheduled_for if job.scheduled_for else job.started_at
    note = f"[{job.problem}] " if job.problem else ""
    if job.waits_for:
        note = f"[waits for {', '.join(job.waits_for)}] " + note
    if job.overdue_since:
        note = f"[overdue since {when(job.overdue_since)}Z] " + note
    return [
        clean(job.id, 36),
        clean(job.name or "?", 28),
        clean(job.queue, 14),
        _status(job),
        attempts,
        when(job.enqueued_at),
        when(moment),
        when(job.finished_at),
        clean(note + error_summary(job.last_error), 50),
    ]


JOB_HEADERS = (
    "ID",
    "NAME",
    "QUEUE",
    "STATUS",
    "TRIES",
    "ENQUEUED",
    "STARTED/DUE",
    "FINISHED",
    "ERROR",
)


def _status(job: JobRecord) -> str:
    """The shared status, with the system's own word where it differs: "blocked (deferred)"."""
    raw = job.raw_status
    if raw and raw.lower() != job.status.value:
        return f"{job.status.value} ({clean(raw, 30)})"
    return job.status.value


def _oldest(queue: QueueCounters) -> str:
    return oldest_age(queue.oldest_enqueued_age_s, queue.oldest_enqueued_age_at_least)


def render_snapshot(snapshot: Snapshot) -> str:
    c = snapshot.counters
    out = [
        f"== {clean(snapshot.source)} ({snapshot.system}) at {when(snapshot.taken_at)}Z",
        f"enqueued {c.enqueued}  scheduled {c.scheduled}  running {c.running}"
        + (f" ({c.running_overdue} overdue)" if c.running_overdue else "")
        + "  "
        f"completed 24h {_window(c.completed_24h, c.completed_kept)}  "
        f"failed 7d {_window(c.failed_7d, c.failed_kept)}  blocked {c.blocked}  "
        f"oldest enqueued {oldest_age(c.oldest_enqueued_age_s, c.oldest_enqueued_age_at_least)}",
    ]
    for problem in c.problems:
        out.append(f"problem: {clean(problem, 400)}")
    if c.queues:
        out.append(
            "queues: "
            + ", ".join(f"{clean(q.name, 40)}={q.enqueued} (oldest {_oldest(q)})" for q in c.queues)
        )
    for name, page in snapshot.lists.items():
        out.append("")
        out.append(f"-- {list_title(name, c)}: {page.total} total, page {page.page}/{page.pages}")
        if page.items:
            out.append(table(JOB_HEADERS, [_job_row(j) for j in page.items]))
        else:
            out.append("(none)")
    if snapshot.workers is not None:
        out.append("")
        out.append(f"-- Workers: {len(snapshot.workers)} registered")
        rows = [_worker_row(w, snapshot.taken_at) for w in snapshot.workers]
        out.append(table(WORKER_HEADERS, rows) if rows else "(none)")
    return "\n".join(out)


WORKER_HEADERS = (
    "worker",
    "state",
    "queues",
    "active/reserved/scheduled",
    "current job",
    "heartbeat",
    "processed",
    "done",
    "failed",
    "working",
)


def _worker_row(worker: Worker, at: datetime) -> list[str]:
    """One worker: its counts as its system reports them ("-" where it does not), its
    current jobs, and its heartbeat's age at the snapshot's time (``at``)."""

    def count(value: int | None) -> str:
        return "-" if value is None else str(value)

    held = "/".join(count(n) for n in (worker.active, worker.reserved, worker.scheduled))
    current = worker.current_jobs or ((worker.current_job,) if worker.current_job else ())
    beat = worker.last_seen or worker.last_heartbeat
    failed = count(worker.failed)
    if worker.failed is not None and worker.failed_since is not None:
        failed += f" (since {when(worker.failed_since)}Z)"
    return [
        clean(worker.name, 60) + (" (!)" if worker.problem else ""),
        clean(worker.state, 20),
        clean(",".join(worker.queues), 60),
        "-" if held == "-/-/-" else held,
        clean(",".join(current), 60) or "-",
        "-" if beat is None else age((at - beat).total_seconds()) + " ago",
        count(worker.processed),
        count(worker.successful),
        failed,
        _working(worker.working_time_s),
    ]


def _working(seconds: float | None) -> str:
    """A working time: to the hundredth under a minute ("0.41s"), else as an age."""
    if seconds is None:
        return "-"
    return f"{seconds:.2f}s" if seconds < 60 else age(seconds)


def render_detail(detail: JobDetail) -> str:
    job = detail.job
    fields = [
        ("source", job.source),
        ("system", job.system),
        ("id", job.id),
        *((("entry", job.entry),) if job.entry else ()),
        ("name", job.name),
        ("queue", job.queue),
        ("status", _status(job)),
        ("enqueued at", when(job.enqueued_at)),
        ("scheduled for", when(job.scheduled_for)),
        ("started at", when(job.started_at)),
        ("finished at", when(job.finished_at) if job.finished_at else "not finished"),
        (attempts_label(job.system).lower(), job.attempts_text or "-"),
        *((("runtime", duration(job.runtime(job.finished_at))),) if job.finished_at else ()),
        *((("wait", duration(job.wait)),) if job.wait is not None else ()),
        *((("waits for", ", ".join(job.waits_for)),) if job.waits_for else ()),
        ("worker", job.worker or "-"),
        ("principal", job.principal_id or "-"),
        ("correlation", job.correlation_id or "-"),
        ("actions", ", ".join(a.value for a in job.actions) or "-"),
        *((("call", job.payload_preview),) if job.payload_preview else ()),
    ]
    if job.problem:
        fields.append(("problem", job.problem))
    if job.overdue_since:
        fields.append(("overdue since", when(job.overdue_since) + "Z (its worker is likely gone)"))
    if job.new_id:
        fields.append(("retried as", job.new_id))
    lines = [f"{k:>14}: {clean(v, 300)}" for k, v in fields]
    if job.last_error:
        lines += ["", "last error:", clean_block(job.last_error)]
    lines += [
        "",
        f"payload ({_kind(detail.payload_kind)}):",
        clean_block(detail.payload.replace("\t", "    ")) or "(empty)",
    ]
    for entry in detail.lifecycle:
        new = f" as {entry.new_id}" if entry.new_id else ""
        lines.append(
            f"lifecycle: {entry.status.value}{new} by {clean(entry.actor, 80)} at {when(entry.at)}Z"
        )
    return "\n".join(lines)


def _kind(kind: str) -> str:
    """A payload kind said once: "json (json)" (a serializer and the format it decoded as,
    the same word) is "json"."""
    head, sep, inner = kind.partition(" (")
    if sep and inner.endswith(")") and inner[:-1] == head:
        return head
    return kind


def _window(count: int | None, kept: int | None) -> str:
    """A window count, or what the system keeps when it cannot count the window."""
    if count is not None:
        return str(count)
    return "n/a" if kept is None else f"n/a ({kept} kept)"
