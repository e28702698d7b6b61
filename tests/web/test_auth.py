"""Authentication and roles: tokens, login sessions, proxy headers, read-only mode."""

from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.errors import ConfigError
from jobbridge.settings import AuthConfig, ServerConfig, Settings
from jobbridge.web.auth import Security
from jobbridge.web.request_checks import check_bind_allowed, safe_next
from jobbridge.web.sessions import COOKIE_NAME, MAX_REVOKED_SESSIONS, Session
from jobbridge.web.throttle import MAX_FAILURES
from tests.web import seed
from tests.web.conftest import (
    OPERATOR_TOKEN,
    SECRET,
    TOKENS,
    VIEWER_TOKEN,
    auth_config,
    bearer,
    csrf_token,
    make_settings,
    proxy_config,
    token,
)


@pytest.fixture
async def authed(make_client):
    return await make_client(auth=auth_config())


async def _login(client, value: str, next_url: str | None = None):
    form_page = await client.get("/admin/login")
    assert form_page.status == 200
    html = await form_page.text()
    marker = 'name="_csrf" value="'
    start = html.index(marker) + len(marker)
    csrf = html[start : html.index('"', start)]
    data = {"_csrf": csrf, "token": value}
    if next_url is not None:
        data["next"] = next_url
    return await client.post("/admin/login", data=data, allow_redirects=False)


def _cookie_header(response) -> str:
    headers = [h for h in response.headers.getall("Set-Cookie") if h.startswith(COOKIE_NAME)]
    assert headers, response.headers
    return headers[-1]


# ---------------------------------------------------------------- no auth configured


async def test_no_auth_everyone_is_an_operator(client, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    html = await (await client.get("/admin/jobs/orders")).text()
    assert 'anonymous <span class="role">operator</span>' in html
    assert 'data-action="retry"' in html
    token = await csrf_token(client)
    response = await client.post(
        f"/admin/jobs/orders/{job_id}/discard", data={"_csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    assert autumn_emulator.dead_raw() == []


async def test_no_auth_login_page_says_so(client) -> None:
    html = await (await client.get("/admin/login")).text()
    assert "Authentication is not configured" in html


# ---------------------------------------------------------------- unauthenticated


async def test_unauthenticated_html_redirects_to_login_with_next(authed) -> None:
    response = await authed.get("/admin/jobs/orders?failed_page=2", allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert parts.path == "/admin/login"
    assert parse_qs(parts.query) == {"next": ["/admin/jobs/orders?failed_page=2"]}


async def test_unauthenticated_htmx_gets_401_with_hx_redirect(authed) -> None:
    response = await authed.get("/admin/jobs/orders/counters", headers={"HX-Request": "true"})
    assert response.status == 401
    assert response.headers["HX-Redirect"] == "/admin/login"


async def test_unauthenticated_api_is_401_json(authed) -> None:
    for path in (
        "/admin/api/sources",
        "/admin/api/sources/orders/snapshot",
        "/admin/api/counters",
        "/admin/api/openapi.json",
        "/metrics",
        "/actuator/jobs",
    ):
        response = await authed.get(path)
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"] == "unauthorized"


async def test_unauthenticated_post_changes_nothing(authed, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    response = await authed.post(f"/admin/api/sources/orders/jobs/{job_id}/discard")
    assert response.status == 401
    response = await authed.post(f"/admin/jobs/orders/{job_id}/discard", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin/login"
    assert len(autumn_emulator.dead_raw()) == 1


async def test_public_paths_need_no_auth(authed) -> None:
    for path in ("/healthz", "/readyz", "/admin/login", "/admin/static/app.css"):
        assert (await authed.get(path)).status == 200, path


# ---------------------------------------------------------------- bearer tokens


async def test_viewer_token_reads_but_cannot_act(authed, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    headers = bearer(VIEWER_TOKEN)
    assert (await authed.get("/admin/api/sources/orders/snapshot", headers=headers)).status == 200
    assert (await authed.get("/metrics", headers=headers)).status == 200
    assert (await authed.get("/actuator/jobs", headers=headers)).status == 200
    html = await (await authed.get("/admin/jobs/orders", headers=headers)).text()
    assert 'watcher <span class="role">viewer</span>' in html
    assert "data-action=" not in html
    for action in ("retry", "discard"):
        response = await authed.post(
            f"/admin/api/sources/orders/jobs/{job_id}/{action}", headers=headers
        )
        assert response.status == 403
        assert (await response.json())["error"] == "forbidden"
    response = await authed.post(f"/admin/jobs/orders/{job_id}/retry", headers=headers)
    assert response.status == 403
    assert "viewer" in await response.text()
    assert len(autumn_emulator.dead_raw()) == 1


async def test_operator_token_acts_without_csrf_token(authed, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    response = await authed.post(
        f"/admin/api/sources/orders/jobs/{job_id}/retry", headers=bearer(OPERATOR_TOKEN)
    )
    assert response.status == 200
    assert (await response.json())["outcome"] == "retried"
    audit = await (await authed.get("/admin/api/audit", headers=bearer(OPERATOR_TOKEN))).json()
    assert audit["entries"][0]["actor"] == "token:ops-bot"


async def test_wrong_bearer_token_is_401(authed) -> None:
    for value in ("nope", "", "x" * 5000, OPERATOR_TOKEN + "x"):
        response = await authed.get(
            "/admin/api/sources", headers={"Authorization": f"Bearer {value}"}
        )
        assert response.status == 401, value


async def test_wrong_bearer_token_beats_a_valid_session(authed) -> None:
    await _login(authed, OPERATOR_TOKEN)
    assert (await authed.get("/admin/api/sources")).status == 200
    response = await authed.get("/admin/api/sources", headers=bearer("wrong"))
    assert response.status == 401


async def test_repeated_failures_from_one_address_are_throttled(authed) -> None:
    await _login(authed, OPERATOR_TOKEN)
    for n in range(MAX_FAILURES):
        response = await authed.get("/admin/api/sources", headers=bearer(f"guess-{n}"))
        assert response.status == 401
    # Now even the right token is refused, so guessing cannot go on: bearer and form alike.
    refused = await authed.get("/admin/api/sources", headers=bearer(OPERATOR_TOKEN))
    assert refused.status == 429
    body = await refused.json()
    assert body["error"] == "too_many_attempts"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert f"try again in {refused.headers['Retry-After']} s" in body["message"]
    form = await _login(authed, OPERATOR_TOKEN)
    assert form.status == 429
    assert "Too many failed sign-ins" in await form.text()
    # The session signed in before the guessing still works.
    assert (await authed.get("/admin/api/sources")).status == 200


@pytest.mark.slow
async def test_failed_logins_count_towards_the_throttle(make_client) -> None:
    client = await make_client(auth=auth_config())
    for _ in range(MAX_FAILURES):
        assert (await _login(client, "not-a-token")).status == 401
    assert (await client.get("/admin/api/sources", headers=bearer(OPERATOR_TOKEN))).status == 429


async def test_the_throttle_can_be_turned_off(make_client) -> None:
    client = await make_client(auth=auth_config(max_failed_sign_ins=0))
    for n in range(MAX_FAILURES * 2):
        assert (await client.get("/admin/api/sources", headers=bearer(f"g-{n}"))).status == 401
    assert (await client.get("/admin/api/sources", headers=bearer(OPERATOR_TOKEN))).status == 200


async def test_throttle_counts_the_address_a_trusted_proxy_saw(make_client) -> None:
    proxy = proxy_config(("127.0.0.0/8",))
    client = await make_client(auth=replace(auth_config(), proxy=proxy))
    guesser = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    for n in range(MAX_FAILURES):
        await client.get("/admin/api/sources", headers={**bearer(f"guess-{n}"), **guesser})
    right = {**bearer(OPERATOR_TOKEN), **guesser}
    assert (await client.get("/admin/api/sources", headers=right)).status == 429
    # Only the last hop counts: the guesser cannot dodge by varying the hops before it.
    dodge = {**bearer(OPERATOR_TOKEN), "X-Forwarded-For": "10.9.9.9, 203.0.113.9"}
    assert (await client.get("/admin/api/sources", headers=dodge)).status == 429
    colleague = {**bearer(OPERATOR_TOKEN), "X-Forwarded-For": "203.0.113.10"}
    assert (await client.get("/admin/api/sources", headers=colleague)).status == 200


async def test_ipv6_guessers_count_by_their_64(make_client) -> None:
    proxy = proxy_config(("127.0.0.0/8",))
    client = await make_client(auth=replace(auth_config(), proxy=proxy))
    for n in range(MAX_FAILURES):
        hop = {"X-Forwarded-For": f"2001:db8:1:2::{n + 1:x}"}  # a fresh address every time
        await client.get("/admin/api/sources", headers={**bearer(f"guess-{n}"), **hop})
    same_64 = {"X-Forwarded-For": "2001:db8:1:2:ffff::1", **bearer(OPERATOR_TOKEN)}
    assert (await client.get("/admin/api/sources", headers=same_64)).status == 429
    other_64 = {"X-Forwarded-For": "2001:db8:1:3::1", **bearer(OPERATOR_TOKEN)}
    assert (await client.get("/admin/api/sources", headers=other_64)).status == 200


async def test_untrusted_peers_cannot_pick_their_throttle_address(authed) -> None:
    for n in range(MAX_FAILURES):
        spoofed = {**bearer(f"guess-{n}"), "X-Forwarded-For": f"192.0.2.{n}"}
        assert (await authed.get("/admin/api/sources", headers=spoofed)).status == 401
    assert (await authed.get("/admin/api/sources", headers=bearer(OPERATOR_TOKEN))).status == 429


async def test_other_authorization_schemes_are_ignored(authed) -> None:
    response = await authed.get(
        "/admin/api/sources", headers={"Authorization": "Basic Zm9vOmJhcg=="}
    )
    assert response.status == 401


async def test_bearer_works_on_html_pages(authed) -> None:
    response = await authed.get("/admin/jobs", headers=bearer(OPERATOR_TOKEN))
    assert response.status == 200
    assert "ops-bot" in await response.text()


# ---------------------------------------------------------------- login sessions


async def test_login_sets_a_strict_http_only_cookie(authed) -> None:
    response = await _login(authed, OPERATOR_TOKEN, "/admin/jobs/orders")
    assert response.status == 303
    assert response.headers["Location"] == "/admin/jobs/orders"
    cookie = _cookie_header(response)
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert "path=/admin" in lowered
    assert "max-age=28800" in lowered
    assert OPERATOR_TOKEN not in cookie
    html = await (await authed.get("/admin/jobs/orders")).text()
    assert 'ops-bot <span class="role">operator</span>' in html
    assert "Sign out" in html


async def test_login_with_wrong_token_is_refused(authed) -> None:
    response = await _login(authed, "not-a-token")
    assert response.status == 401
    assert "That token is not valid." in await response.text()
    assert (await authed.get("/admin/jobs", allow_redirects=False)).status == 303


async def test_login_without_csrf_token_is_refused(authed) -> None:
    await authed.get("/admin/login")
    response = await authed.post("/admin/login", data={"token": OPERATOR_TOKEN})
    assert response.status == 403
    assert (await authed.get("/admin/jobs", allow_redirects=False)).status == 303


async def test_login_rotates_the_session_id(authed) -> None:
    await authed.get("/admin/login")
    before = authed.session.cookie_jar.filter_cookies(authed.make_url("/admin/"))[COOKIE_NAME]
    await _login(authed, VIEWER_TOKEN)
    after = authed.session.cookie_jar.filter_cookies(authed.make_url("/admin/"))[COOKIE_NAME]
    security = Security(Settings(auth=auth_config()))
    old, new = security.decode(before.value), security.decode(after.value)
    assert old is not None and new is not None
    assert old.sid != new.sid and new.token_fp is not None


async def test_signing_in_again_ends_the_previous_session(authed) -> None:
    def cookie() -> str:
        return authed.session.cookie_jar.filter_cookies(authed.make_url("/admin/"))[
            COOKIE_NAME
        ].value

    await _login(authed, VIEWER_TOKEN)
    earlier = cookie()
    await _login(authed, OPERATOR_TOKEN)
    current = cookie()
    authed.session.cookie_jar.clear()

    async def status(value: str) -> int:
        headers = {"Cookie": f"{COOKIE_NAME}={value}"}
        return (await authed.get("/admin/api/sources", headers=headers)).status

    assert await status(earlier) == 401
    assert await status(current) == 200


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "/elsewhere",
        "javascript:alert(1)",
        "/admin/jobs\r\nSet-Cookie: x=1",
    ],
)
async def test_login_ignores_foreign_next(authed, target: str) -> None:
    response = await _login(authed, OPERATOR_TOKEN, target)
    assert response.status == 303
    assert response.headers["Location"] == "/admin/jobs"


def test_safe_next_rules() -> None:
    assert (
        safe_next("/admin/jobs/orders?failed_page=2", "/admin")
        == "/admin/jobs/orders?failed_page=2"
    )
    assert safe_next("/admin", "/admin") == "/admin"
    assert safe_next("/administrator", "/admin") is None
    assert safe_next("//evil", "") is None
    assert safe_next("/jobs", "") == "/jobs"
    assert safe_next("http://x/admin", "/admin") is None
    assert safe_next(None, "/admin") is None


async def test_logout_clears_the_cookie(authed) -> None:
    await _login(authed, OPERATOR_TOKEN)
    token = await csrf_token(authed)
    response = await authed.post("/admin/logout", data={"_csrf": token}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/admin/login"
    cookie = _cookie_header(response).lower()
    assert "max-age=0" in cookie and "path=/admin" in cookie
    assert (await authed.get("/admin/jobs", allow_redirects=False)).status == 303


async def test_a_copy_of_the_cookie_is_dead_after_logout(authed) -> None:
    await _login(authed, OPERATOR_TOKEN)
    stolen = authed.session.cookie_jar.filter_cookies(authed.make_url("/admin/jobs"))[
        COOKIE_NAME
    ].value
    token = await csrf_token(authed)
    await authed.post("/admin/logout", data={"_csrf": token}, allow_redirects=False)
    replay = await authed.get("/admin/api/sources", headers={"Cookie": f"{COOKIE_NAME}={stolen}"})
    assert replay.status == 401


@pytest.mark.slow
def test_revoked_sessions_are_bounded() -> None:
    security = Security(make_settings("redis://127.0.0.1:1/0", auth=auth_config()))
    first = security.new_session(TOKENS[0])
    security.revoke(first)
    for _ in range(MAX_REVOKED_SESSIONS):
        security.revoke(security.new_session(TOKENS[0]))
    assert len(security._revoked) == MAX_REVOKED_SESSIONS
    assert security.decode(security.encode(first)) is not None  # the oldest was forgotten
    last = security.new_session(TOKENS[0])
    security.revoke(last)
    assert security.decode(security.encode(last)) is None


async def test_logout_needs_csrf(authed) -> None:
    await _login(authed, OPERATOR_TOKEN)
    response = await authed.post("/admin/logout", allow_redirects=False)
    assert response.status == 403
    assert (await authed.get("/admin/jobs")).status == 200


async def test_viewer_session_sees_no_buttons_and_is_refused(
    authed, autumn_emulator: Autumn
) -> None:
    job_id = seed.fail(autumn_emulator)
    await _login(authed, VIEWER_TOKEN)
    html = await (await authed.get("/admin/jobs/orders")).text()
    assert "data-action=" not in html
    token = await csrf_token(authed)
    response = await authed.post(f"/admin/jobs/orders/{job_id}/retry", data={"_csrf": token})
    assert response.status == 403
    api = await authed.post(
        f"/admin/api/sources/orders/jobs/{job_id}/retry", headers={"X-CSRF-Token": token}
    )
    assert api.status == 403
    assert len(autumn_emulator.dead_raw()) == 1


async def test_operator_session_acts_with_flash(authed, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    await _login(authed, OPERATOR_TOKEN)
    token = await csrf_token(authed, "/admin/jobs/orders")
    response = await authed.post(
        f"/admin/jobs/orders/{job_id}/retry",
        data={"_csrf": token, "next": "/admin/jobs/orders"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/admin/jobs/orders"
    html = await (await authed.get("/admin/jobs/orders")).text()
    assert f"Retried job {job_id} as " in html
    assert 'class="flash flash-ok"' in html
    # The flash is shown once.
    assert "flash-ok" not in await (await authed.get("/admin/jobs/orders")).text()
    audit = await (await authed.get("/admin/api/audit")).json()
    assert audit["entries"][0]["actor"] == "token:ops-bot"


async def test_tampered_or_expired_cookie_is_not_a_session(authed, redis_url) -> None:
    settings = Settings(auth=auth_config())
    security = Security(settings)
    operator = TOKENS[0]
    valid = security.encode(security.new_session(operator))
    url = authed.make_url("/admin/")
    authed.session.cookie_jar.update_cookies({COOKIE_NAME: valid}, url)
    assert (await authed.get("/admin/api/sources")).status == 200
    data, mac = valid.rsplit(".", 1)
    forged = data[:-2] + ("AA" if data[-2:] != "AA" else "BB") + "." + mac
    expired = security.encode(Session(sid="s", exp=int(time.time()) - 5, token_fp=None))
    other_secret = Security(Settings(auth=auth_config(session_secret="another-secret-0123456789")))
    foreign = other_secret.encode(other_secret.new_session(operator))
    for value in (forged, expired, foreign, "garbage", valid + "x"):
        authed.session.cookie_jar.clear()
        authed.session.cookie_jar.update_cookies({COOKIE_NAME: value}, url)
        assert (await authed.get("/admin/api/sources")).status == 401, value


async def test_session_dies_when_its_token_is_removed(make_client, redis_url) -> None:
    first = await make_client(auth=auth_config())
    await _login(first, OPERATOR_TOKEN)
    cookie = first.session.cookie_jar.filter_cookies(first.make_url("/admin/"))[COOKIE_NAME]
    rotated = auth_config(tokens=(token("ops-bot", "operator", "a-brand-new-token-123"),))
    second = await make_client(auth=rotated)
    second.session.cookie_jar.update_cookies(
        {COOKIE_NAME: cookie.value}, second.make_url("/admin/")
    )
    assert (await second.get("/admin/api/sources")).status == 401


async def test_random_secret_when_none_is_configured(make_client) -> None:
    auth = AuthConfig(tokens=TOKENS)
    first = await make_client(auth=auth)
    await _login(first, OPERATOR_TOKEN)
    assert (await first.get("/admin/api/sources")).status == 200
    cookie = first.session.cookie_jar.filter_cookies(first.make_url("/admin/"))[COOKIE_NAME]
    second = await make_client(auth=auth)
    second.session.cookie_jar.update_cookies(
        {COOKIE_NAME: cookie.value}, second.make_url("/admin/")
    )
    assert (await second.get("/admin/api/sources")).status == 401


# ---------------------------------------------------------------- proxy headers


async def test_trusted_proxy_operator(make_client, autumn_emulator: Autumn) -> None:
    client = await make_client(auth=AuthConfig(proxy=proxy_config(("127.0.0.1",))))
    headers = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "staff, jobbridge-operators"}
    job_id = seed.fail(autumn_emulator)
    page = await client.get("/admin/jobs/orders", headers=headers)
    assert page.status == 200
    html = await page.text()
    assert 'alice <span class="role">operator</span>' in html
    assert 'data-action="discard"' in html
    marker = '<meta name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    token = html[start : html.index('"', start)]
    response = await client.post(
        f"/admin/jobs/orders/{job_id}/discard",
        data={"_csrf": token},
        headers=headers,
        allow_redirects=False,
    )
    assert response.status == 303
    assert autumn_emulator.dead_raw() == []
    audit = await (await client.get("/admin/api/audit", headers=headers)).json()
    assert audit["entries"][0]["actor"] == "proxy:alice"


async def test_trusted_proxy_viewer_and_group_rules(make_client) -> None:
    proxy = proxy_config(("127.0.0.0/8",), viewer_groups=("staff",))
    client = await make_client(auth=AuthConfig(proxy=proxy))
    viewer = {"X-Forwarded-User": "bob", "X-Forwarded-Groups": "staff"}
    html = await (await client.get("/admin/jobs", headers=viewer)).text()
    assert 'bob <span class="role">viewer</span>' in html
    outsider = {"X-Forwarded-User": "eve", "X-Forwarded-Groups": "interns"}
    response = await client.get("/admin/api/sources", headers=outsider)
    assert response.status == 403
    assert (await response.json())["error"] == "forbidden"
    assert (await client.get("/admin/jobs", headers=outsider)).status == 403
    # No user header: not authenticated at all.
    assert (await client.get("/admin/api/sources")).status == 401


async def test_cookie_is_secure_behind_a_trusted_tls_proxy(make_client) -> None:
    trusted = await make_client(auth=AuthConfig(proxy=proxy_config(("127.0.0.1",))))
    headers = {"X-Forwarded-User": "dave", "X-Forwarded-Proto": "https"}
    response = await trusted.get("/admin/jobs", headers=headers)
    assert "; secure" in _cookie_header(response).lower()
    untrusted = await make_client(auth=auth_config(proxy=proxy_config(("10.0.0.1",))))
    response = await untrusted.get("/admin/login", headers={"X-Forwarded-Proto": "https"})
    assert "; secure" not in _cookie_header(response).lower()


async def test_any_proxy_user_may_view_when_viewer_groups_empty(make_client) -> None:
    client = await make_client(auth=AuthConfig(proxy=proxy_config(("127.0.0.1",))))
    response = await client.get("/admin/api/sources", headers={"X-Forwarded-User": "carol"})
    assert response.status == 200


async def test_untrusted_peer_proxy_headers_are_ignored(
    make_client, autumn_emulator: Autumn
) -> None:
    client = await make_client(auth=AuthConfig(proxy=proxy_config(("10.9.8.7",))))
    job_id = seed.fail(autumn_emulator)
    headers = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "jobbridge-operators"}
    assert (await client.get("/admin/api/sources", headers=headers)).status == 401
    page = await client.get("/admin/jobs", headers=headers, allow_redirects=False)
    assert page.status == 303
    response = await client.post(
        f"/admin/api/sources/orders/jobs/{job_id}/discard", headers=headers
    )
    assert response.status == 401
    assert len(autumn_emulator.dead_raw()) == 1


# ---------------------------------------------------------------- read-only


async def test_read_only_disables_every_action(
    make_client, redis_url, autumn_emulator: Autumn
) -> None:
    failed = seed.fail(autumn_emulator)
    waiting = seed.enqueue(autumn_emulator)
    client = await make_client(make_settings(redis_url, read_only=True))
    html = await (await client.get("/admin/jobs/orders")).text()
    assert "data-action=" not in html
    assert "badge-readonly" in html
    detail = await (await client.get(f"/admin/jobs/orders/{failed}")).text()
    assert "data-action=" not in detail and "(read-only mode)" in detail
    token = await csrf_token(client)
    for job_id, action in ((failed, "retry"), (failed, "discard"), (waiting, "cancel")):
        api = await client.post(
            f"/admin/api/sources/orders/jobs/{job_id}/{action}", headers={"X-CSRF-Token": token}
        )
        assert api.status == 403
        body = await api.json()
        assert body["error"] == "forbidden" and "read-only" in body["message"]
        page = await client.post(f"/admin/jobs/orders/{job_id}/{action}", data={"_csrf": token})
        assert page.status == 403
    assert len(autumn_emulator.dead_raw()) == 1
    assert autumn_emulator.queue_ids() == [waiting]


async def test_read_only_with_operator_token(
    make_client, redis_url, autumn_emulator: Autumn
) -> None:
    failed = seed.fail(autumn_emulator)
    client = await make_client(make_settings(redis_url, read_only=True, auth=auth_config()))
    response = await client.post(
        f"/admin/api/sources/orders/jobs/{failed}/retry", headers=bearer(OPERATOR_TOKEN)
    )
    assert response.status == 403
    assert len(autumn_emulator.dead_raw()) == 1


# ---------------------------------------------------------------- bind check


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.5"])
def test_loopback_bind_without_auth_is_allowed(host: str) -> None:
    check_bind_allowed(Settings(server=ServerConfig(host=host)))


def test_public_bind_without_auth_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        check_bind_allowed(Settings(server=ServerConfig(host="0.0.0.0")))
    assert str(info.value) == (
        "refusing to listen on 0.0.0.0 without authentication; "
        "configure [[auth.tokens]] or pass --insecure-no-auth"
    )


def test_public_bind_with_auth_or_explicit_flag_is_allowed() -> None:
    check_bind_allowed(
        Settings(server=ServerConfig(host="0.0.0.0"), auth=AuthConfig(tokens=TOKENS))
    )
    check_bind_allowed(Settings(server=ServerConfig(host="0.0.0.0", insecure_no_auth=True)))


def test_secret_is_used_for_signing() -> None:
    one = Security(Settings(auth=AuthConfig(session_secret=SECRET)))
    two = Security(Settings(auth=AuthConfig(session_secret=SECRET)))
    session = one.new_session()
    assert two.decode(one.encode(session)) == session
    assert one.csrf_token(session) == two.csrf_token(session)
