"""DNS rebinding: without authentication only Host names that cannot be rebound are served."""

from __future__ import annotations

import pytest

from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.settings import AuthConfig
from tests.web import seed
from tests.web.conftest import OPERATOR_TOKEN, auth_config, bearer, proxy_config


def host(value: str) -> dict[str, str]:
    return {"Host": value}


@pytest.mark.parametrize(
    "name",
    ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080", "app.localhost", "10.1.2.3"],
)
async def test_addresses_and_localhost_are_served_without_auth(client, name: str) -> None:
    assert (await client.get("/admin/jobs", headers=host(name))).status == 200


@pytest.mark.parametrize("name", ["evil.example:8080", "evil.example", "127.0.0.1.nip.io"])
async def test_a_rebound_name_is_refused_without_auth(client, name: str) -> None:
    response = await client.get("/admin/api/sources", headers=host(name))
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "host_not_allowed"
    assert "allowed_hosts" in body["message"]
    page = await client.get("/admin/jobs", headers=host(name))
    assert page.status == 400
    assert "allowed_hosts" in await page.text()


@pytest.mark.parametrize("name", ["x:y", "127.0.0.1, evil.example", "evil@127.0.0.1", ""])
async def test_a_malformed_host_is_refused(client, name: str) -> None:
    response = await client.get("/admin/api/sources", headers=host(name))
    assert response.status == 400
    assert (await response.json())["error"] == "host_not_allowed"


async def test_proxy_auth_alone_does_not_open_other_names(
    make_client, autumn_emulator: Autumn
) -> None:
    """A rebound page can set the proxy's user headers itself; from a trusted address they
    would count. So proxy authentication does not lift the Host rule: allowed_hosts does."""
    job = seed.enqueue(autumn_emulator)
    proxy = proxy_config(("127.0.0.0/8",))
    client = await make_client(auth=AuthConfig(proxy=proxy))
    forged = {
        "Host": "evil.example",
        "X-Forwarded-User": "mallory",
        "X-Forwarded-Groups": "jobbridge-operators",
    }
    assert (await client.get("/admin/jobs/orders", headers=forged)).status == 400
    response = await client.post(
        f"/admin/api/sources/orders/jobs/{job}/cancel",
        headers={**forged, "Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status == 400
    assert autumn_emulator.queue_ids() == [job]
    named = await make_client(auth=AuthConfig(proxy=proxy), allowed_hosts=("jobs.example.com",))
    user = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "jobbridge-operators"}
    ok = await named.get("/admin/jobs", headers={**user, "Host": "jobs.example.com"})
    assert ok.status == 200


async def test_the_rebinding_attack_changes_nothing(client, autumn_emulator: Autumn) -> None:
    """What a hostile page rebound to 127.0.0.1 would do: read a token, then post a cancel."""
    job = seed.enqueue(autumn_emulator)
    evil = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}
    page = await client.get("/admin/jobs/orders", headers=evil)
    assert page.status == 400
    assert "csrf" not in (await page.text()).lower()
    assert "Set-Cookie" not in page.headers
    response = await client.post(
        f"/admin/jobs/orders/{job}/cancel",
        headers={**evil, "Sec-Fetch-Site": "same-origin"},
        data={"_csrf": "anything"},
        allow_redirects=False,
    )
    assert response.status == 400
    assert autumn_emulator.queue_ids() == [job]


async def test_probes_answer_whatever_the_host(client) -> None:
    assert (await client.get("/healthz", headers=host("10-0-0-7.pods.cluster"))).status == 200
    assert (await client.get("/readyz", headers=host("10-0-0-7.pods.cluster"))).status == 200


async def test_with_auth_any_name_is_served(make_client) -> None:
    authed = await make_client(auth=auth_config())
    headers = {**host("jobs.example.com"), **bearer(OPERATOR_TOKEN)}
    assert (await authed.get("/admin/api/sources", headers=headers)).status == 200


async def test_allowed_hosts_are_the_only_names_served(make_client) -> None:
    client = await make_client(auth=auth_config(), allowed_hosts=("jobs.example.com", "[::1]"))
    token = bearer(OPERATOR_TOKEN)
    ok = await client.get("/admin/api/sources", headers={**host("Jobs.Example.com:443"), **token})
    assert ok.status == 200
    assert (
        await client.get("/admin/api/sources", headers={**host("[::1]:80"), **token})
    ).status == 200
    other = await client.get("/admin/api/sources", headers={**host("127.0.0.1"), **token})
    assert other.status == 400


async def test_a_star_allows_every_name_even_without_auth(make_client) -> None:
    client = await make_client(allowed_hosts=("*",))
    assert (await client.get("/admin/jobs", headers=host("evil.example"))).status == 200
