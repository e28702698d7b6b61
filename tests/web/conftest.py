"""Web test fixtures: app and client factories, tokens, and the headless browser."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from jobbridge.dev.private_redis import free_port
from jobbridge.settings import (
    AuthConfig,
    ProxyAuthConfig,
    ServerConfig,
    Settings,
    SourceConfig,
    TokenConfig,
)
from jobbridge.web.app import create_app

PREFIX = "autumn:jobs"
OPERATOR_TOKEN = "operator-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"
SECRET = "test-session-secret-0123456789"

ClientFactory = Callable[..., Awaitable[TestClient]]


def token(name: str, role: str, value: str) -> TokenConfig:
    digest = hashlib.sha256(value.encode()).hexdigest()
    return TokenConfig(name=name, role=role, token_sha256=digest)


TOKENS = (token("ops-bot", "operator", OPERATOR_TOKEN), token("watcher", "viewer", VIEWER_TOKEN))


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def dead_url() -> str:
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


def make_settings(
    redis_url: str,
    *,
    auth: AuthConfig | None = None,
    queues: tuple[str, ...] | None = None,
    extra_sources: tuple[SourceConfig, ...] = (),
    **server: Any,
) -> Settings:
    server.setdefault("cache_ttl_s", 0.0)
    return Settings(
        server=ServerConfig(**server),
        sources=(
            SourceConfig(name="orders", system="autumn", redis_url=redis_url, queues=queues),
            *extra_sources,
        ),
        auth=auth or AuthConfig(),
    )


@pytest.fixture
def make_client(aiohttp_client: Any, redis_url: str) -> ClientFactory:
    """Build an app from settings (its own service, as in production) and a test client."""

    async def make(settings: Settings | None = None, **kw: Any) -> TestClient:
        app = create_app(settings or make_settings(redis_url, **kw))
        client: TestClient = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient:
    """No authentication configured: everyone is an (anonymous) operator."""
    return await make_client()


def auth_config(**kw: Any) -> AuthConfig:
    kw.setdefault("tokens", TOKENS)
    kw.setdefault("session_secret", SECRET)
    return AuthConfig(**kw)


def proxy_config(trusted: tuple[str, ...], **kw: Any) -> ProxyAuthConfig:
    return replace(ProxyAuthConfig(), trusted_addresses=trusted, **kw)


async def csrf_token(client: TestClient, path: str = "/admin/jobs") -> str:
    """Load a page (getting a session cookie) and return its CSRF token."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    html = await response.text()
    marker = '<meta name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


# ------------------------------------------------------------------ browser tests


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium not found: run scripts/install-chromium (apt-get install chromium)")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox"]
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
def problems() -> list[str]:
    """Console errors, page errors and dialogs seen by the page (a test may expect some)."""
    return []


@pytest.fixture
async def page(browser: Browser, problems: list[str]) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    try:
        yield tab
    finally:
        await context.close()
    # No CSP violation, script error or alert() on any page a test visited.
    assert problems == []


def base_url(client: Any) -> str:
    """The test server's root URL, for the browser."""
    return str(client.make_url("")).rstrip("/")
