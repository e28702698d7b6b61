"""Calling the bulk API from the per-system worker tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from tests.integration.processes import scaled


class BulkClient:
    """The bulk endpoints of one source of an app under test, as an operator calls them."""

    def __init__(self, client: TestClient, prefix: str, source: str, headers: dict[str, str]):
        self.client = client
        self.base = f"{prefix}/api/sources/{source}/bulk"
        self.headers = headers

    async def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        response = await self.client.post(
            f"{self.base}{path}", json=body or {}, headers=self.headers
        )
        return response.status, await response.json()

    async def read(self, run_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{self.base}/{run_id}", headers=self.headers)
        assert response.status == 200, await response.text()
        return await response.json()  # type: ignore[no-any-return]

    async def until(self, run_id: str, *states: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + scaled(timeout)
        while True:
            body = await self.read(run_id)
            if body["state"] in states:
                return body
            assert body["state"] != "failed", body
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)

    async def dry_run(self, body: dict[str, Any]) -> dict[str, Any]:
        status, run = await self.post("", body)
        assert status == 202, run
        return await self.until(run["id"], "matched")

    async def confirm(self, run: dict[str, Any]) -> None:
        status, body = await self.post(f"/{run['id']}/confirm", {"count": run["matched"]})
        assert status == 202, body


def retried_once(
    done: dict[str, Any], audit: list[dict[str, Any]], outage: list[str], other: list[str]
) -> list[str]:
    """The new ids of a finished bulk retry of ``outage``, asserting it did exactly that: each
    of those jobs retried once, every outcome done, none of ``other`` touched."""
    count = len(outage)
    assert (done["acted"], done["outcomes"], done["skipped"]) == (count, {"done": count}, [])
    retries = [e for e in audit if e["action"] == "retry"]
    assert sorted(e["job_id"] for e in retries) == sorted(outage), "each retried once"
    new_ids = [e["new_id"] for e in retries]
    assert len(set(new_ids)) == count and not set(new_ids) & set(outage + other)
    return new_ids
