"""``error_summary``: the line of an error an operator reads, from real tracebacks (Python's,
as RQ stores them in ``exc_info`` and its results stream, and Celery's ``ExceptionInfo``) and
from hostile text."""

from __future__ import annotations

import traceback

from billiard.einfo import ExceptionInfo

from jobbridge.model import JobDetail, JobRecord, JobStatus
from jobbridge.render import render_detail
from jobbridge.text import error_summary


class TenantError(ValueError):
    pass


def _lookup(tenant: str) -> None:
    tenants: dict[str, int] = {}
    if tenant not in tenants:
        raise TenantError(f"no such tenant: {tenant}")


def _python_traceback() -> str:
    try:
        _lookup("acme")
    except TenantError:
        return traceback.format_exc()
    raise AssertionError("unreachable")


def _chained_traceback() -> str:
    try:
        try:
            {}["missing"]
        except KeyError as exc:
            raise RuntimeError("could not load the order") from exc
    except RuntimeError:
        return traceback.format_exc()
    raise AssertionError("unreachable")


def _caret_traceback() -> str:
    """Python 3.11+ underlines the failing expression with carets after the code line."""
    values: list[int] = []
    try:
        values[0] + values[1]
    except IndexError:
        return traceback.format_exc()
    raise AssertionError("unreachable")


def test_python_traceback_is_summed_up_by_its_exception_line() -> None:
    text = _python_traceback()
    assert text.startswith("Traceback (most recent call last)")
    # a class outside builtins is named with its module, as Python prints it
    assert error_summary(text) == f"{__name__}.TenantError: no such tenant: acme"


def test_chained_traceback_gives_the_last_exception() -> None:
    assert error_summary(_chained_traceback()) == "RuntimeError: could not load the order"


def test_caret_markers_are_skipped() -> None:
    text = _caret_traceback()
    assert error_summary(text) == "IndexError: list index out of range"


def test_rq_exc_string_shape() -> None:
    # RQ stores "".join(traceback.format_exception(*exc_info)), a trailing newline included
    try:
        raise ValueError("boom 3")
    except ValueError as exc:
        stored = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert stored.endswith("\n")
    assert error_summary(stored) == "ValueError: boom 3"


def test_celery_exception_info_traceback() -> None:
    try:
        raise KeyError("tenant-7")
    except KeyError:
        info = ExceptionInfo()
    assert "Traceback (most recent call last)" in info.traceback
    assert error_summary(info.traceback) == "KeyError: 'tenant-7'"


def test_one_line_and_message_errors_keep_their_first_line() -> None:
    assert error_summary("ValueError('no such tenant')") == "ValueError('no such tenant')"
    assert error_summary("visibility timeout expired\nclaimed by w1") == (
        "visibility timeout expired"
    )
    assert error_summary(None) == "" and error_summary("") == "" and error_summary("\n \n") == ""


def test_hostile_text_is_marked_and_cut() -> None:
    evil = "Traceback (most recent call last):\n  File x\nValueError: \x1b[31mred\u202eevil\r"
    summary = error_summary(evil)
    assert "\x1b" not in summary and "\u202e" not in summary
    assert summary.startswith("ValueError: \ufffd[31mred\ufffdevil")
    assert error_summary("E" * 500, 80) == "E" * 79 + "…"
    # a megabyte traceback is read at its end only, and still gives its exception line
    huge = (
        "Traceback (most recent call last):\n" + "  File 'x', line 1\n" * 60_000 + "OSError: full"
    )
    assert error_summary(huge) == "OSError: full"
    # nothing but markers: the text itself, cleaned
    assert error_summary("^^^^\n~~~~") == "^^^^ ~~~~"


# ------------------------------------------------------------------------------ CLI show


def _detail(**job: object) -> JobDetail:
    record = JobRecord(
        source="s",
        system="celery",
        id="t-1",
        name="app.fail",
        queue="celery",
        status=job.pop("status", JobStatus.ENQUEUED),  # type: ignore[arg-type]
        raw_status="PENDING",
        **job,  # type: ignore[arg-type]
    )
    return JobDetail(job=record, payload='{"args": [1]}', payload_kind="json (json)")


def test_show_has_no_none_attempts_doubled_kind_or_dash_finish() -> None:
    out = render_detail(_detail())
    assert "None" not in out
    assert "attempt: -" in out and "?/?" not in out
    assert "payload (json):" in out and "json (json)" not in out
    assert "finished at: not finished" in out
    done = render_detail(
        _detail(status=JobStatus.FAILED, attempt=2, max_attempts=3, last_error=_python_traceback())
    )
    assert "attempt: 2/3" in done
    assert done.count("Traceback (most recent call last)") == 1
