"""The demo's RQ tasks, run by ``rq worker --with-scheduler`` (the producer enqueues them by
reference). Every task takes the request's identity as keyword arguments (``principal_id``,
``correlation_id``), which is where jobbridge reads them from."""

from __future__ import annotations

import random
import time

from rq import get_current_job


def _attempt() -> int:
    """This run's attempt, 1 for the first. RQ counts the retries left, not the ones made, so
    the producer puts the number it allowed in the job's meta (``max_retries``)."""
    job = get_current_job()
    if job is None or job.retries_left is None:
        return 1
    allowed = int(job.meta.get("max_retries", job.retries_left))
    return allowed - job.retries_left + 1


def render_report(*, report: str, pages: int = 3, **ident: object) -> dict[str, object]:
    """Renders a report: quick and successful."""
    time.sleep(random.uniform(0.05, 0.4))
    return {"report": report, "pages": pages}


def export_csv(*, rows: int, seconds: float, **ident: object) -> int:
    """The slow one: an export that takes ``seconds``."""
    time.sleep(seconds)
    return rows


def flaky_report(*, report: str, fail_attempts: int, **ident: object) -> str:
    """Fails on its first ``fail_attempts`` attempts (the producer sets ``Retry``)."""
    attempt = _attempt()
    if attempt <= fail_attempts:
        raise ConnectionError(f"warehouse timed out rendering {report} (attempt {attempt})")
    return f"{report} rendered on attempt {attempt}"


def broken_report(*, report: str, message: str, **ident: object) -> None:
    """Always fails: with retries left it comes back, then it stays failed."""
    raise ValueError(f"{report}: {message}")


def build_invoice_pdf(*, order: str, **ident: object) -> str:
    """One leg of a checkout request (an Autumn job and a Celery task share its ids)."""
    time.sleep(random.uniform(0.1, 0.5))
    return f"invoice-{order}.pdf"
