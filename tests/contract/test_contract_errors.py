"""Errors read the same way on every registered system: a failed job's row summarises its
error by :func:`jobbridge.text.error_summary` (a traceback's exception line), and its page
shows the whole error once, under "Last error", and not again in the payload."""

from __future__ import annotations

import html
import re

import pytest

from jobbridge.text import error_summary
from jobbridge.web.formatting import ERROR_CUT
from tests.contract.conftest import SOURCE, Api
from tests.contract.harness import State, SystemHarness
from tests.contract.test_contract import eventually, listed

pytestmark = pytest.mark.redis


def _section(page: str, heading: str) -> str:
    start = page.index(f"<h2>{heading}")
    return html.unescape(page[start : page.index("</section>", start)])


async def test_a_failed_job_reads_by_its_summary_and_shows_its_error_once(
    harness: SystemHarness, api: Api
) -> None:
    (job_id,) = harness.seed({State.FAILED: 1})[State.FAILED]
    body = await listed(api, {State.FAILED: [job_id]})
    row = next(i for i in body["lists"]["failed"]["items"] if i["id"] == job_id)
    assert row["last_error"], row

    async def summary() -> str:
        status, page = await api.get(f"/jobs/{SOURCE}")
        assert status == 200
        found = re.search(
            rf'data-job-id="{re.escape(job_id)}".*?<details class="error"><summary>(.*?)</summary>',
            page,
            re.S,
        )
        assert found, "no error summary on the failed row"
        return html.unescape(found.group(1))

    assert await eventually(summary) == error_summary(row["last_error"], ERROR_CUT)

    status, detail = await api.job(job_id)
    assert status == 200 and detail["last_error"], detail
    status, page = await api.get(f"/jobs/{SOURCE}/{job_id}")
    assert status == 200
    error = detail["last_error"].strip()
    assert error in _section(page, "Last error")
    # the payload box does not repeat a multi-line error (a one-line one may be a value)
    if "\n" in error:
        assert error not in _section(page, "Payload")
