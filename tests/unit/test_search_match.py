"""How a row matches a search (jobbridge.search.match), and the query's limits: no Redis."""

from __future__ import annotations

import pytest

from jobbridge.adapters.registry import SearchSpec, system
from jobbridge.model import JobRecord, JobStatus
from jobbridge.search import MAX_QUERY_CHARS, BadQuery, clean_query, match, spec_of


def row(**fields: object) -> JobRecord:
    base: dict[str, object] = {
        "source": "s",
        "system": "celery",
        "id": "job-1",
        "name": "app.tasks.Send_Email",
        "queue": "q",
        "status": JobStatus.ENQUEUED,
        "raw_status": "queued",
        "correlation_id": "req-9",
        "principal_id": "user-7",
        "extra": {"root_id": "root-3", "priority": "5"},
    }
    return JobRecord(**{**base, **fields})  # type: ignore[arg-type]


def test_ids_match_exactly_and_names_in_part_without_case() -> None:
    spec = SearchSpec(extras=("root_id",))
    job = row()
    assert match(job, "job-1", spec) == "id"
    assert match(job, "req-9", spec) == "correlation_id"
    assert match(job, "user-7", spec) == "principal_id"
    assert match(job, "root-3", spec) == "root_id"
    assert match(job, "send_email", spec) == "name"
    # Parts of ids, extras the system does not name, and other values do not match.
    for query in ("job", "req", "5", "user-70", "nothing"):
        assert match(job, query, spec) is None, query


def test_each_system_names_its_extras_and_says_what_it_covers() -> None:
    assert spec_of("celery") == system("celery").search
    assert "root_id" in spec_of("celery").extras and "group" in spec_of("rq").extras
    for name in ("autumn", "rq", "celery"):
        assert spec_of(name).covers
    # A system the registry does not know gets the defaults.
    assert spec_of("elsewhere") == SearchSpec()


def test_a_query_is_trimmed_and_bounded() -> None:
    assert clean_query("  req-9\n") == "req-9"
    assert clean_query("x" * MAX_QUERY_CHARS) == "x" * MAX_QUERY_CHARS
    for bad in (None, "", "   ", "x" * (MAX_QUERY_CHARS + 1)):
        with pytest.raises(BadQuery):
            clean_query(bad)
