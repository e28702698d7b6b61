"""Issue 19, for every registered system: a source page's filters narrow its failed and
enqueued lists (the filter is shared code; each system's rows carry what it matches on), and
the live fragment filters the same way."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from tests.contract.conftest import SOURCE, Api
from tests.contract.harness import State, SystemHarness
from tests.contract.test_contract import listed


def _rows(html: str, name: str) -> set[str]:
    start = html.index(f'data-list="{name}"')
    section = html[start : html.find("</section>", start)]
    assert 'class="form-error"' not in section, section
    return set(re.findall(r'data-job-id="([^"]+)"', section))


async def _list(api: Api, which: str, **query: str) -> set[str]:
    wanted = {f"{which}_{k}": v for k, v in query.items()}
    status, html = await api.get(f"/jobs/{SOURCE}?{urlencode({'per_page': 100, **wanted})}")
    assert status == 200, html
    rows = _rows(str(html), which)
    # the live refresh of the tab gives the same rows
    status, fragment = await api.get(f"/jobs/{SOURCE}/lists/{which}?{urlencode(wanted)}")
    assert status == 200, fragment
    assert _rows(str(fragment), which) == rows
    return rows


async def test_filters_narrow_the_failed_and_enqueued_lists(
    system: str, harness: SystemHarness, api: Api
) -> None:
    for state in (State.FAILED, State.ENQUEUED):
        name = state.value
        tagged = harness.seed_tagged(
            state, 2, correlation_id=f"req-{name}", principal_id=f"user-{name}"
        )
        plain = harness.seed({state: 3})[state]
        body = await listed(api, {state: tagged + plain})
        queue = next(row["queue"] for row in body["lists"][name]["items"])
        everything = set(tagged + plain)
        assert await _list(api, name) >= everything
        assert await _list(api, name, correlation_id=f"req-{name}") == set(tagged)
        assert await _list(api, name, principal_id=f"user-{name}") == set(tagged)
        assert await _list(api, name, principal_id="nobody-at-all") == set()
        assert await _list(api, name, queue=queue) >= everything
        assert await _list(api, name, queue="no-such-queue-here") == set()
        assert await _list(api, name, since="1d") >= everything
        assert await _list(api, name, until="1d") == set()
        assert await _list(api, name, name="no-job-is-called-this") == set()
