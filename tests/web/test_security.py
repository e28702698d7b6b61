"""Security headers, escaping of attacker-controlled job data, and errors that leak nothing."""

from __future__ import annotations

import json

import aiohttp_jinja2
import pytest

from jobbridge.dev.autumn_emulator import Autumn, Worker
from jobbridge.service import JobService
from jobbridge.sources import build_adapters
from jobbridge.web.app import create_app
from tests.web import seed
from tests.web.conftest import make_settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def _assert_secure_headers(response, *, cacheable: bool = False) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in ("same-origin", "no-referrer")
    assert headers["X-Frame-Options"] == "DENY"
    if cacheable:
        assert "no-store" not in headers["Cache-Control"]
    else:
        assert headers["Cache-Control"] == "no-store"


async def test_headers_on_every_kind_of_response(client, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator)
    token_page = await client.get("/admin/jobs")
    _assert_secure_headers(token_page)
    for path in (
        "/admin/jobs/orders",
        f"/admin/jobs/orders/{job_id}",
        "/admin/jobs/counters",
        "/admin/jobs/orders/counters",
        "/admin/audit",
        "/admin/login",
        "/admin/api/sources",
        "/admin/api/sources/orders/snapshot",
        "/admin/api/openapi.json",
        "/admin/api/counters",
        "/healthz",
        "/readyz",
        "/metrics",
        "/actuator/jobs",
        "/admin/jobs/nope",
        "/admin/api/sources/nope/snapshot",
        "/nothing-here",
    ):
        response = await client.get(path)
        _assert_secure_headers(response)
    redirect = await client.get("/admin", allow_redirects=False)
    _assert_secure_headers(redirect)
    refused = await client.post(f"/admin/jobs/orders/{job_id}/retry")
    assert refused.status == 403
    _assert_secure_headers(refused)
    static = await client.get("/admin/static/app.css")
    _assert_secure_headers(static, cacheable=True)


async def test_error_xss_is_escaped(client, autumn_emulator: Autumn) -> None:
    job_id = seed.fail(autumn_emulator, SCRIPT + " " + "y" * 100)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for path in ("/admin/jobs/orders", "/admin/jobs", f"/admin/jobs/orders/{job_id}"):
        html = await (await client.get(path)).text()
        assert SCRIPT not in html, path
        assert escaped in html, path


async def test_payload_xss_is_escaped(client, autumn_emulator: Autumn) -> None:
    job_id = seed.enqueue(
        autumn_emulator, "noop", {"principal_id": IMG, "correlation_id": IMG, "x": IMG}
    )
    for path in ("/admin/jobs/orders", f"/admin/jobs/orders/{job_id}"):
        html = await (await client.get(path)).text()
        assert IMG not in html and "<img" not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path


async def test_job_name_xss_is_escaped(client, autumn_emulator: Autumn) -> None:
    job_id = seed.enqueue(autumn_emulator, IMG, {})
    Worker(autumn_emulator, ["default"]).run(until_idle=True)  # unknown job type: dead-lettered
    for path in ("/admin/jobs/orders", "/admin/jobs", f"/admin/jobs/orders/{job_id}"):
        html = await (await client.get(path)).text()
        assert "<img" not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
    body = await (await client.get("/actuator/jobs")).json()
    assert IMG in body["jobs"]  # JSON carries the text as data, served as application/json


async def test_queue_name_xss_is_escaped(make_client, redis_url, autumn_emulator: Autumn) -> None:
    queue = "<script>q</script>"
    client = await make_client(make_settings(redis_url, queues=("default", queue)))
    seed.enqueue(autumn_emulator, "noop", {}, queue=queue)
    for path in ("/admin/jobs/orders", "/admin/jobs"):
        html = await (await client.get(path)).text()
        assert "<script>q" not in html, path
        assert "&lt;script&gt;q&lt;/script&gt;" in html, path
    metrics = await (await client.get("/metrics")).text()
    assert 'queue="<script>q</script>"' in metrics  # a label value, text/plain


async def test_job_id_xss_is_escaped_in_links_and_text(client, autumn_emulator: Autumn) -> None:
    job_id = '"><svg onload=alert(1)>'
    autumn_emulator.enqueue("noop", {}, job_id=job_id)
    html = await (await client.get("/admin/jobs/orders")).text()
    assert "<svg" not in html
    # Not a path segment (it has characters a client could fold): the exact id as ?id=.
    assert 'href="/admin/jobs/orders/job?id=%22%3E%3Csvg+onload%3Dalert%281%29%3E"' in html
    assert "&#34;&gt;&lt;svg onload=alert(1)&gt;" in html
    detail = await client.get("/admin/jobs/orders/job?id=%22%3E%3Csvg+onload%3Dalert%281%29%3E")
    assert detail.status == 200
    assert "<svg" not in await detail.text()


async def test_invisible_characters_are_made_visible(client, autumn_emulator: Autumn) -> None:
    seed.enqueue(autumn_emulator, "pay\u202eusd.exe\x1b[2J", {})
    html = await (await client.get("/admin/jobs/orders")).text()
    assert "\u202e" not in html and "\x1b" not in html
    assert "pay\ufffdusd.exe\ufffd[2J" in html


async def test_huge_error_is_capped_in_the_table(client, autumn_emulator: Autumn) -> None:
    seed.fail(autumn_emulator, "z" * 20_000)
    html = await (await client.get("/admin/jobs/orders")).text()
    assert "z" * 4000 in html and "z" * 4001 not in html
    assert "more characters]" in html


class _ExplodingService(JobService):
    closed = False

    async def snapshot(self, source, query=None):
        raise RuntimeError("secret internal detail /etc/passwd")

    async def close(self) -> None:
        type(self).closed = True
        await super().close()


@pytest.fixture
async def exploding(aiohttp_client, redis_url):
    settings = make_settings(redis_url)
    service = _ExplodingService(build_adapters(settings.sources), cache_ttl_s=0)
    client = await aiohttp_client(create_app(settings, service))
    yield client
    await client.close()
    assert not _ExplodingService.closed  # a service passed in is the caller's to close
    await service.close()


async def test_errors_never_leak_stack_traces(exploding) -> None:
    page = await exploding.get("/admin/jobs/orders")
    assert page.status == 500
    html = await page.text()
    assert "500 · Internal error" in html
    assert "secret internal detail" not in html and "Traceback" not in html
    api = await exploding.get("/admin/api/sources/orders/snapshot")
    assert api.status == 500
    assert await api.json() == {
        "error": "internal",
        "message": "Something went wrong on our side; it has been logged.",
    }
    assert (await exploding.get("/healthz")).status == 200


async def test_a_lone_surrogate_in_job_data_breaks_no_page(client, autumn_emulator: Autumn) -> None:
    """JSON may spell an unpaired surrogate ("\\ud800"); no UTF-8 output can carry it."""
    queued = autumn_emulator.enqueue("noop", {"note": "x"})
    raw = autumn_emulator.record_raw(queued)
    assert raw is not None
    autumn_emulator.client.set(autumn_emulator.record_key(queued), raw.replace('"x"', '"\\ud800"'))
    dead = json.dumps({"id": "d1", "error": "bad \udfff", "raw_payload": "\ud800"})
    autumn_emulator.client.lpush(autumn_emulator.dead_key, dead)
    for path in (
        "/admin/jobs",
        "/admin/jobs/orders",
        f"/admin/jobs/orders/{queued}",
        "/admin/api/sources/orders/snapshot",
        f"/admin/api/sources/orders/jobs/{queued}",
        "/actuator/jobs",
    ):
        response = await client.get(path)
        assert response.status == 200, path
        (await response.read()).decode("utf-8")  # valid UTF-8 throughout
    html = await (await client.get("/admin/jobs/orders")).text()
    assert "record is not valid JSON" in html


async def test_templates_print_no_lone_surrogate(client) -> None:
    env = aiohttp_jinja2.get_env(client.app)
    out = env.from_string('{{ x }}<a title="{{ x }}">').render(x="a\ud800b")
    assert out == 'a\ufffdb<a title="a\ufffdb">'
