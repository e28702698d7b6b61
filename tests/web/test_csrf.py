"""CSRF: per-session tokens on every form and htmx request, plus Origin / Sec-Fetch-Site."""

from __future__ import annotations

import re

import pytest

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import AuthConfig
from tests.web import seed
from tests.web.conftest import OPERATOR_TOKEN, auth_config, bearer, csrf_token, proxy_config


def _unchanged(autumn: Autumn, failed: str, waiting: str) -> None:
    assert len(autumn.dead_raw()) == 1 and autumn.dead_record_raw(failed) is not None
    assert autumn.queue_ids() == [waiting]
    assert autumn.client.llen("jobbridge:audit") == 0


@pytest.fixture
def jobs(autumn_emulator: Autumn) -> tuple[str, str]:
    failed = seed.fail(autumn_emulator)
    waiting = seed.enqueue(autumn_emulator)
    return failed, waiting


def _targets(failed: str, waiting: str) -> list[str]:
    return [
        f"/admin/jobs/orders/{failed}/retry",
        f"/admin/jobs/orders/{failed}/discard",
        f"/admin/jobs/orders/{waiting}/cancel",
        f"/admin/api/sources/orders/jobs/{failed}/retry",
        f"/admin/api/sources/orders/jobs/{failed}/discard",
        f"/admin/api/sources/orders/jobs/{waiting}/cancel",
    ]


async def test_missing_token_is_refused(client, autumn_emulator, jobs) -> None:
    await csrf_token(client)  # a session exists; the request just does not carry its token
    for path in _targets(*jobs):
        response = await client.post(path, data={"next": "/admin/jobs"})
        assert response.status == 403, path
        text = await response.text()
        assert "security token" in text
    _unchanged(autumn_emulator, *jobs)


async def test_missing_session_is_refused(client, autumn_emulator, jobs) -> None:
    for path in _targets(*jobs):
        response = await client.post(path, data={"_csrf": "x"})
        assert response.status == 403, path
    _unchanged(autumn_emulator, *jobs)


async def test_sessionless_api_post_is_told_to_use_a_token(client, autumn_emulator, jobs) -> None:
    """A script's POST (no session cookie, no CSRF token, no bearer) is refused exactly as
    before, and told how a script authenticates; a form's refusal keeps the form's words."""
    failed, waiting = jobs
    for path in _targets(failed, waiting):
        if "/api/" in path:
            client.session.cookie_jar.clear()  # a refused form's page may have set one
            response = await client.post(path, json={})
            assert response.status == 403, path
            body = await response.json()
            assert body["error"] == "csrf", body
            assert "Authorization: Bearer" in body["message"], body
            assert "security token" not in body["message"], body
        else:
            response = await client.post(path, data={"next": "/admin/jobs"})
            assert response.status == 403, path
            text = await response.text()
            assert "security token" in text and "Bearer" not in text, path
    _unchanged(autumn_emulator, failed, waiting)


async def test_wrong_token_is_refused(client, make_client, autumn_emulator, jobs) -> None:
    other = await make_client()
    foreign = await csrf_token(other)  # valid, but for another session
    await csrf_token(client)
    for value in ("wrong", "", foreign, "A" * 5000):
        for path in _targets(*jobs):
            form = await client.post(path, data={"_csrf": value})
            assert form.status == 403, (path, value[:10])
            header = await client.post(path, headers={"X-CSRF-Token": value})
            assert header.status == 403, (path, value[:10])
    _unchanged(autumn_emulator, *jobs)


async def test_cross_site_fetch_metadata_is_refused(client, autumn_emulator, jobs) -> None:
    token = await csrf_token(client)
    for site in ("cross-site", "same-site", "CROSS-SITE", "weird"):
        for path in _targets(*jobs):
            response = await client.post(
                path, data={"_csrf": token}, headers={"Sec-Fetch-Site": site}
            )
            assert response.status == 403, (site, path)
            assert "cross-site" in (await response.text()).lower()
    _unchanged(autumn_emulator, *jobs)


async def test_foreign_origin_is_refused(client, autumn_emulator, jobs) -> None:
    token = await csrf_token(client)
    host = client.make_url("/").host
    port = client.make_url("/").port
    for origin in (
        "https://evil.example",
        "null",
        f"http://{host}:{port + 1}",
        f"http://{host}.evil.example:{port}",
        "file://",
        "garbage",
    ):
        for path in _targets(*jobs):
            response = await client.post(path, data={"_csrf": token}, headers={"Origin": origin})
            assert response.status == 403, (origin, path)
    _unchanged(autumn_emulator, *jobs)


async def test_same_origin_with_token_is_accepted(client, autumn_emulator: Autumn) -> None:
    failed = seed.fail(autumn_emulator)
    token = await csrf_token(client)
    origin = str(client.make_url("/")).rstrip("/")
    response = await client.post(
        f"/admin/jobs/orders/{failed}/discard",
        data={"_csrf": token},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert autumn_emulator.dead_raw() == []


async def test_htmx_header_token_is_accepted(client, autumn_emulator: Autumn) -> None:
    failed = seed.fail(autumn_emulator)
    token = await csrf_token(client)
    response = await client.post(
        f"/admin/api/sources/orders/jobs/{failed}/discard",
        headers={"X-CSRF-Token": token, "HX-Request": "true", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status == 200


async def test_bearer_is_exempt_from_token_but_not_origin(
    make_client, autumn_emulator, jobs
) -> None:
    client = await make_client(auth=auth_config())
    failed, waiting = jobs
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await client.post(
            f"/admin/api/sources/orders/jobs/{failed}/discard",
            headers={**bearer(OPERATOR_TOKEN), **headers},
        )
        assert response.status == 403
        assert (await response.json())["error"] == "cross_origin"
    _unchanged(autumn_emulator, failed, waiting)
    response = await client.post(
        f"/admin/api/sources/orders/jobs/{failed}/discard", headers=bearer(OPERATOR_TOKEN)
    )
    assert response.status == 200


async def test_session_api_calls_need_the_header(make_client, autumn_emulator, jobs) -> None:
    client = await make_client(auth=auth_config())
    page = await client.get("/admin/login")
    html = await page.text()
    csrf = re.search(r'name="_csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    await client.post("/admin/login", data={"_csrf": csrf, "token": OPERATOR_TOKEN})
    failed, waiting = jobs
    response = await client.post(f"/admin/api/sources/orders/jobs/{failed}/retry")
    assert response.status == 403
    assert (await response.json())["error"] == "csrf"
    _unchanged(autumn_emulator, failed, waiting)


async def test_forwarded_host_counts_only_from_a_trusted_proxy(
    make_client, autumn_emulator
) -> None:
    failed = seed.fail(autumn_emulator)
    headers = {
        "X-Forwarded-User": "alice",
        "X-Forwarded-Groups": "jobbridge-operators",
        "X-Forwarded-Host": "jobs.example.com",
        "Origin": "https://jobs.example.com",
    }
    untrusted = await make_client(
        auth=AuthConfig(tokens=auth_config().tokens, proxy=proxy_config(("10.0.0.1",)))
    )
    response = await untrusted.post(
        f"/admin/api/sources/orders/jobs/{failed}/discard",
        headers={**headers, **bearer(OPERATOR_TOKEN)},
    )
    assert response.status == 403
    trusted = await make_client(auth=AuthConfig(proxy=proxy_config(("127.0.0.1",))))
    page = await trusted.get("/admin/jobs", headers=headers)
    token = re.search(r'name="csrf-token" content="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]
    response = await trusted.post(
        f"/admin/api/sources/orders/jobs/{failed}/discard",
        headers={**headers, "X-CSRF-Token": token},
    )
    assert response.status == 200


async def test_every_post_form_carries_the_token(client, autumn_emulator: Autumn) -> None:
    mix = seed.mix(autumn_emulator)
    for path in (
        "/admin/jobs/orders",
        f"/admin/jobs/orders/{mix.failed}",
        f"/admin/jobs/orders/{mix.enqueued}",
        "/admin/jobs",
    ):
        html = await (await client.get(path)).text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        forms = re.findall(r'<form method="post".*?</form>', html, flags=re.S)
        for form in forms:
            assert f'<input type="hidden" name="_csrf" value="{token}">' in form, path
    page = await (await client.get("/admin/jobs/orders")).text()
    # retry, discard, 3 cancels, and a bulk form on each of the failed, enqueued and scheduled
    # lists
    assert len(re.findall(r'<form method="post"', page)) == 8


async def test_csrf_token_is_stable_within_a_session(client) -> None:
    assert await csrf_token(client) == await csrf_token(client, "/admin/audit")
