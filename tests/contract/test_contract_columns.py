"""Issue 18, for every registered system: a source page's lists have the columns their system
declares (``SystemSpec.list_columns``) that one of their rows fills, and no other."""

from __future__ import annotations

from jobbridge.adapters import systems
from jobbridge.adapters.registry import LIST_COLUMNS
from jobbridge.model import JobStatus
from tests.contract.conftest import SOURCE, Api
from tests.contract.harness import State, SystemHarness
from tests.contract.test_contract import listed
from tests.web.html_tables import list_table

#: columns of a list of jobs that have not run their current attempt
NOT_RUN = ("Finished At", "Runtime", "Wait", "Last Error")


async def _page(api: Api) -> str:
    status, html = await api.get(f"/jobs/{SOURCE}?per_page=100")
    assert status == 200, html
    return str(html)


async def test_no_list_has_a_column_empty_for_every_row(
    system: str, harness: SystemHarness, api: Api
) -> None:
    made = harness.seed({state: 2 for state in harness.states})
    await listed(api, made)
    html = await _page(api)
    for state in State:
        if f'id="list-{state.value}"' not in html:
            continue
        table = list_table(html, state.value)
        if not table.rows:
            assert table.headers == ["Job"], (state, table.headers)
            continue
        for header, cells in table.columns().items():
            if header != "Job":
                assert any(cell != "—" for cell in cells), (state, header, cells)
    # the contract's jobs carry no principal or correlation id: no such columns
    assert ">Principal</th>" not in html and ">Correlation</th>" not in html
    # jobs that wait have not finished, failed or run
    for state in (State.ENQUEUED, State.SCHEDULED):
        if state in harness.states:
            headers = list_table(html, state.value).headers
            assert not set(NOT_RUN) & set(headers), (state, headers)


async def test_a_row_with_a_principal_brings_its_column(
    system: str, harness: SystemHarness, api: Api
) -> None:
    tagged = harness.seed_tagged(
        State.ENQUEUED, 1, correlation_id="req-columns", principal_id="user-columns"
    )
    plain = harness.seed({State.ENQUEUED: 1})
    await listed(api, {State.ENQUEUED: tagged + plain[State.ENQUEUED]})
    html = await _page(api)
    table = list_table(html, State.ENQUEUED.value)
    assert table.cell(tagged[0], "Principal") == "user-columns"
    assert table.cell(tagged[0], "Correlation") == "req-columns"
    assert table.cell(plain[State.ENQUEUED][0], "Principal") == "—"


def test_every_system_declares_known_columns_and_status_words(
    system: str, harness: SystemHarness
) -> None:
    spec = systems()[system]
    assert set(spec.list_columns) <= set(LIST_COLUMNS), spec.list_columns
    assert spec.shown_columns(), system
    shared = {s.value for s in JobStatus}
    for word, status in spec.status_words:
        assert word and status in shared, (word, status)
    assert spec.attempts.label and spec.attempts.means
