"""Issue 15 §1, an action acts on exactly the job named: every id travels byte for byte from
the row that shows it to the script that acts (never trimmed, never folded by a route
pattern), two entries sharing an id are two rows each reaching its own, what was done to one
entry never blocks or relabels another, and an id no route can carry offers no action.

Each case is driven through the page a person uses: the row's own link and form, read out of
the source page's HTML, then the system's own keys say what happened.
"""

from __future__ import annotations

import asyncio
import html as html_lib
import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from aiohttp.test_utils import TestClient
from celery import Celery
from click.testing import CliRunner
from rq import Queue

from jobbridge.cli import main
from jobbridge.dev.autumn_emulator import Autumn
from jobbridge.model import MAX_JOB_ID_CHARS, System
from jobbridge.settings import ServerConfig, Settings, SourceConfig
from tests.celery.celery_support import send, state_of
from tests.rq import tasks as rq_tasks
from tests.web import seed
from tests.web.conftest import ClientFactory, csrf_token

pytestmark = pytest.mark.redis

#: pairs of ids that a route, a client or a trim could confuse: the second is acted on, the
#: first must stay where it is
TWINS: list[tuple[str, str]] = [
    ("A", "A\t"),
    ("A", " A"),
    ("x", "{x}"),
    ("x", "x}"),
    ("a", "a/b"),
    ("a", "a?b=1"),
    ("a", "a#b"),
    ("A", "%41"),
    ("a b", "a+b"),
    ("e", "é"),
    (".", ".."),
    ("counters", "job"),
    ("x" * (MAX_JOB_ID_CHARS - 1), "x" * MAX_JOB_ID_CHARS),
]
#: the same with ids that are not UTF-8 (RQ ids are bytes; jobbridge carries them as
#: surrogate escapes)
BYTE_TWINS: list[tuple[bytes, bytes]] = [(b"\xfeA", b"\xfeA\t"), (b"\xfe", b"\xfe ")]


def rows(page: str) -> dict[str, str]:
    """Each row's ``data-job-id`` (unescaped) -> the action URL of its Cancel form."""
    found: dict[str, str] = {}
    for segment in page.split("<tr ")[1:]:
        ident = re.search(r'data-job-id="([^"]*)"', segment)
        action = re.search(r'action="([^"]*/cancel[^"]*)"', segment.split("</tr>")[0])
        if ident and action:
            found[html_lib.unescape(ident.group(1))] = html_lib.unescape(action.group(1))
    return found


def links(page: str) -> list[str]:
    return [html_lib.unescape(u) for u in re.findall(r'class="job-id" href="([^"]*)"', page)]


async def cancel_by_form(client: TestClient, action: str) -> str:
    response = await client.post(
        action, data={"_csrf": await csrf_token(client)}, allow_redirects=True
    )
    assert response.status == 200, await response.text()
    return await response.text()


SOURCES: dict[str, System] = {"orders": "autumn", "rqs": "rq", "work": "celery"}


def settings(redis_url: str, name: str) -> Settings:
    """One source of the three: "orders" (Autumn), "rqs" (RQ) or "work" (Celery)."""
    return Settings(
        server=ServerConfig(cache_ttl_s=0.0),
        sources=(
            SourceConfig(
                name=name,
                system=SOURCES[name],
                redis_url=redis_url,
                queues=("celery", "mail") if name == "work" else None,
            ),
        ),
    )


# ---------------------------------------------------------------- one id, one job


@pytest.mark.parametrize(("kept", "acted"), TWINS)
async def test_an_autumn_row_acts_on_exactly_its_id(
    make_client: ClientFactory, redis_url: str, autumn_emulator: Autumn, kept: str, acted: str
) -> None:
    autumn_emulator.enqueue("noop", {}, job_id=kept)
    autumn_emulator.enqueue("noop", {}, job_id=acted)
    client = await make_client(settings(redis_url, "orders"))
    page = await (await client.get("/admin/jobs/orders")).text()
    forms = rows(page)
    assert set(forms) == {kept, acted}
    # The row's link opens that job's page, with that job's id.
    for url in links(page):
        assert (await client.get(url)).status == 200, url
    await cancel_by_form(client, forms[acted])
    assert autumn_emulator.queue_ids() == [kept]
    api = await client.get(f"/admin/api/sources/orders/jobs/job?{urlencode({'id': kept})}")
    assert (await api.json())["status"] == "enqueued"


def rq_jobs(conn: redis.Redis, ids: list[bytes]) -> None:
    """Waiting RQ jobs under ids RQ's own API refuses (the adversary wrote them): a real
    job's hash copied under each id, each id in the queue."""
    job = Queue("default", connection=conn).enqueue(rq_tasks.add, 1, 2)
    dumped = conn.dump(f"rq:job:{job.id}")
    assert isinstance(dumped, bytes)
    conn.lrem("rq:queue:default", 0, job.id)
    conn.delete(f"rq:job:{job.id}")
    for ident in ids:
        conn.restore(b"rq:job:" + ident, 0, dumped)
        conn.rpush("rq:queue:default", ident)


@pytest.mark.parametrize(
    ("kept", "acted"),
    [(k.encode(), a.encode()) for k, a in TWINS] + BYTE_TWINS,
)
async def test_an_rq_row_acts_on_exactly_its_id(
    make_client: ClientFactory, redis_url: str, sync_redis: redis.Redis, kept: bytes, acted: bytes
) -> None:
    rq_jobs(sync_redis, [kept, acted])
    client = await make_client(settings(redis_url, "rqs"))
    page = await (await client.get("/admin/jobs/rqs")).text()
    forms = rows(page)
    assert len(forms) == 2
    for url in links(page):
        assert (await client.get(url)).status == 200, url
    row_id = acted.decode("utf-8", "surrogateescape")
    (action,) = [url for ident, url in forms.items() if _same_row(ident, row_id)]
    await cancel_by_form(client, action)
    assert sync_redis.lrange("rq:queue:default", 0, -1) == [kept]
    assert sync_redis.hget(b"rq:job:" + acted, "status") == b"canceled"
    assert sync_redis.hget(b"rq:job:" + kept, "status") == b"queued"


def _same_row(shown: str, job_id: str) -> bool:
    """A row's ``data-job-id`` is its id as the page prints it: bytes that are not UTF-8 show
    as U+FFFD."""
    return shown == job_id.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# ---------------------------------------------------------------- two entries, one id


async def test_two_celery_messages_of_one_task_id_are_two_rows_each_canceling_its_own(
    make_client: ClientFactory, redis_url: str, sync_redis: redis.Redis, celery_app: Celery
) -> None:
    task_id = "twin-task"
    send(celery_app, "add", 1, 2, task_id=task_id, queue="celery")
    send(celery_app, "add", 3, 4, task_id=task_id, queue="mail")
    send(celery_app, "add", 5, 6, queue="mail")  # the mail binding, so the queue is shown
    client = await make_client(settings(redis_url, "work"))
    snapshot = await (await client.get("/admin/api/sources/work/snapshot")).json()
    twins = [j for j in snapshot["lists"]["enqueued"]["items"] if j["id"] == task_id]
    assert len(twins) == 2 and twins[0]["entry"] != twins[1]["entry"]
    by_queue = {j["queue"]: j["entry"] for j in twins}

    page = await (await client.get("/admin/jobs/work")).text()
    actions = [html_lib.unescape(u) for u in re.findall(r'action="([^"]*/cancel[^"]*)"', page)]
    mail_action = next(a for a in actions if urlencode({"entry": by_queue["mail"]}) in a)
    # Its page is that message's page.
    detail = await client.get(mail_action.replace("/cancel", ""))
    assert detail.status == 200 and by_queue["mail"] in await detail.text()

    after = await cancel_by_form(client, mail_action)
    assert "Canceled" in after
    assert sync_redis.llen("celery") == 1  # the other copy still waits
    assert not any(task_id.encode() in m for m in sync_redis.lrange("mail", 0, -1))
    # The other row's cancel is not "already canceled": it removes the other message.
    celery_action = next(a for a in actions if urlencode({"entry": by_queue["celery"]}) in a)
    after = await cancel_by_form(client, celery_action)
    assert "already" not in after and sync_redis.llen("celery") == 0
    audit = await (await client.get("/admin/api/audit")).json()
    assert [(e["job_id"], e["entry"], e["outcome"]) for e in audit["entries"][:2]] == [
        (task_id, "waiting", "done"),
        (task_id, "waiting", "done"),
    ]


async def test_a_discard_of_a_task_never_blocks_the_cancel_of_a_waiting_message_of_it(
    make_client: ClientFactory, redis_url: str, sync_redis: redis.Redis, celery_app: Celery
) -> None:
    """The discard of a failed run of X writes X's own lifecycle entry; a waiting message of X
    is another entry, which its cancel still acts on."""
    task_id = "discarded-then-waiting"
    sync_redis.set(
        f"jobbridge:celery::lifecycle:{task_id}",
        json.dumps({"job_id": task_id, "status": "discarded", "at_ms": 1, "actor": "ops"}),
    )
    send(celery_app, "add", 1, 2, task_id=task_id)
    client = await make_client(settings(redis_url, "work"))
    result = await client.post(
        f"/admin/api/sources/work/jobs/{task_id}/cancel",
        headers={"X-CSRF-Token": await csrf_token(client)},
    )
    assert result.status == 200, await result.text()
    assert sync_redis.llen("celery") == 0 and state_of(celery_app, task_id) == "REVOKED"


async def test_a_dead_entry_carrying_a_live_jobs_id_never_relabels_the_live_job(
    make_client: ClientFactory, redis_url: str, autumn_emulator: Autumn
) -> None:
    failed = seed.fail(autumn_emulator)
    live = seed.enqueue(autumn_emulator)
    forged = json.loads(autumn_emulator.dead_raw()[0])
    forged["id"] = live
    autumn_emulator.client.lpush(f"{autumn_emulator.prefix}:dead", json.dumps(forged))
    autumn_emulator.client.delete(autumn_emulator.dead_record_key(failed))
    client = await make_client(settings(redis_url, "orders"))
    token = await csrf_token(client)
    reply = await client.post(
        f"/admin/api/sources/orders/jobs/{live}/discard", headers={"X-CSRF-Token": token}
    )
    assert reply.status == 200, await reply.text()
    detail: dict[str, Any] = await (
        await client.get(f"/admin/api/sources/orders/jobs/{live}")
    ).json()
    assert detail["status"] == "enqueued" and detail["lifecycle"] == []
    assert autumn_emulator.queue_ids() == [live]
    # ... and its cancel is not refused as "already discarded".
    reply = await client.post(
        f"/admin/api/sources/orders/jobs/{live}/cancel", headers={"X-CSRF-Token": token}
    )
    assert reply.status == 200, await reply.text()


# ---------------------------------------------------------------- ids no route can carry


async def test_an_id_too_long_for_any_route_offers_no_action_anywhere(
    make_client: ClientFactory, redis_url: str, sync_redis: redis.Redis, celery_app: Celery
) -> None:
    long_id = "L" * (MAX_JOB_ID_CHARS + 1)
    rq_jobs(sync_redis, [long_id.encode()])
    client = await make_client(settings(redis_url, "rqs"))
    snapshot = await (await client.get("/admin/api/sources/rqs/snapshot")).json()
    (row,) = snapshot["lists"]["enqueued"]["items"]
    assert row["actions"] == [] and "longer than 200 characters" in row["problem"]
    page = await (await client.get("/admin/jobs/rqs")).text()
    assert rows(page) == {} and "no page or action can name it" in page
    reply = await client.post(
        f"/admin/api/sources/rqs/jobs/job/cancel?{urlencode({'id': long_id})}",
        headers={"X-CSRF-Token": await csrf_token(client)},
    )
    assert reply.status == 404
    # The CLI refuses it the same way, and the job still waits.
    command = ["cancel", "--redis", redis_url, long_id]
    result = await asyncio.to_thread(CliRunner().invoke, main, command)
    assert result.exit_code == 1 and "longer than 200 characters" in result.output
    assert sync_redis.lrange("rq:queue:default", 0, -1) == [long_id.encode()]


async def test_a_celery_message_with_an_overlong_id_goes_by_its_digest_and_can_be_canceled(
    make_client: ClientFactory, redis_url: str, sync_redis: redis.Redis, celery_app: Celery
) -> None:
    send(celery_app, "add", 1, 2, task_id="T" * 300)
    client = await make_client(settings(redis_url, "work"))
    snapshot = await (await client.get("/admin/api/sources/work/snapshot")).json()
    (row,) = snapshot["lists"]["enqueued"]["items"]
    assert row["id"].startswith("message:") and "over 200" in row["problem"]
    assert row["actions"] == ["cancel"]
    forms = rows(await (await client.get("/admin/jobs/work")).text())
    await cancel_by_form(client, forms[row["id"]])
    assert sync_redis.llen("celery") == 0
