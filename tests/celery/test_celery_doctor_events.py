"""``doctor`` says when a Celery source's workers send no task events (started without
``-E`` by an app without ``worker_send_task_events``), from what real workers publish while
they run tasks; a worker that sends them gets no advice, and an idle one is said to be unknown
rather than guessed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from jobbridge.cli import main
from tests.celery.celery_support import send

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def doctor(redis_url: str) -> str:
    result = CliRunner().invoke(main, ["doctor", "--redis", redis_url], catch_exceptions=False)
    out = result.stdout + result.stderr
    assert result.exit_code == 0, out
    return out


def without_task_events_app(tmp_path: Path) -> tuple[str, Path]:
    """The example app with ``worker_send_task_events`` off (the example turns it on)."""
    folder = tmp_path / "app"
    folder.mkdir(exist_ok=True)
    (folder / "jb_events_off.py").write_text(
        "from examples.celery_app import app\napp.conf.worker_send_task_events = False\n"
    )
    return "jb_events_off:app", folder


def without_task_events(celery_workers, tmp_path: Path):
    """A worker of that app without ``-E``: it sends worker events only."""
    return celery_workers.start(events=False, app=without_task_events_app(tmp_path))


def keep_busy(celery_app, count: int = 60) -> None:
    """Enough short tasks for a solo worker to run through the whole listen (~12 s)."""
    for _ in range(count):
        send(celery_app, "sleep", 0.2)


def event_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "task events" in line]


def test_a_worker_without_e_running_tasks_is_told_to_send_events(
    celery_app, celery_workers, redis_url, tmp_path
) -> None:
    worker = without_task_events(celery_workers, tmp_path)
    keep_busy(celery_app)
    (line,) = event_lines(doctor(redis_url))
    assert line.startswith(f"⚠ source celery: workers {worker.hostname} ran tasks"), line
    assert "sent no task events" in line and "-E" in line and "enable_events" in line


def test_a_worker_with_e_gets_no_advice(celery_app, celery_workers, redis_url, tmp_path) -> None:
    # the same app as above: only -E differs
    celery_workers.start(events=True, app=without_task_events_app(tmp_path))
    keep_busy(celery_app)
    out = doctor(redis_url)
    assert event_lines(out) == [], out


def test_an_idle_worker_is_not_guessed(celery_app, celery_workers, redis_url, tmp_path) -> None:
    worker = without_task_events(celery_workers, tmp_path)
    send(celery_app, "add", 1, 2).get(timeout=20)  # bindings there, then nothing to run
    (line,) = event_lines(doctor(redis_url))
    assert "is not known" in line and worker.hostname in line, line


def test_no_worker_running_says_nothing_of_events(celery_app, redis_url) -> None:
    send(celery_app, "add", 1, 2)
    assert event_lines(doctor(redis_url)) == []
