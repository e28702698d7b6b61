"""The contract tests' fixtures: one test per registered system, its harness, and the real
app (its own service and background work, as in production) with one source of the system."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from jobbridge.settings import AuthConfig, ServerConfig, Settings, TokenConfig
from jobbridge.web.app import create_app
from tests.contract.harness import SystemHarness
from tests.contract.harnesses import HARNESSES, registered_systems

SOURCE = "contract"
PREFIX = "/admin"
OPERATOR_TOKEN = "contract-operator-token-0123456789"
VIEWER_TOKEN = "contract-viewer-token-0123456789"


def token(name: str, role: str, value: str) -> TokenConfig:
    digest = hashlib.sha256(value.encode()).hexdigest()
    return TokenConfig(name=name, role=role, token_sha256=digest)  # type: ignore[arg-type]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "system" in metafunc.fixturenames:
        metafunc.parametrize("system", registered_systems())


@pytest.fixture
def harness(system: str, redis_url: str) -> Iterator[SystemHarness]:
    make = HARNESSES.get(system)
    if make is None:
        pytest.fail(
            f"system {system!r} is registered but has no contract harness: add one to "
            "HARNESSES in tests/contract/harnesses.py (see tests/contract/harness.py)"
        )
    made = make(redis_url)
    assert made.system == system
    try:
        yield made
    finally:
        made.close()


@dataclass
class Api:
    """The JSON API of the app under test, called with one role's token."""

    client: TestClient  # type: ignore[type-arg]

    async def get(self, path: str, token: str = OPERATOR_TOKEN) -> tuple[int, Any]:
        response = await self.client.get(
            f"{PREFIX}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()

    async def snapshot(self) -> dict[str, Any]:
        status, body = await self.get(f"/api/sources/{SOURCE}/snapshot?per_page=100")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def job(self, job_id: str) -> tuple[int, Any]:
        return await self.get(f"/api/sources/{SOURCE}/jobs/{job_id}")

    async def act(
        self, job_id: str, action: str, token: str = OPERATOR_TOKEN
    ) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(
            f"{PREFIX}/api/sources/{SOURCE}/jobs/{job_id}/{action}",
            headers={"Authorization": f"Bearer {token}"},
        )
        return response.status, await response.json()


@pytest.fixture
async def api(harness: SystemHarness) -> AsyncIterator[Api]:
    settings = Settings(
        server=ServerConfig(prefix=PREFIX, cache_ttl_s=0.0),
        sources=(harness.source(SOURCE),),
        auth=AuthConfig(
            tokens=(
                token("contract-ops", "operator", OPERATOR_TOKEN),
                token("contract-viewer", "viewer", VIEWER_TOKEN),
            ),
            session_secret="contract-test-session-secret-0123456789",
        ),
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        yield Api(client)
    finally:
        await client.close()
