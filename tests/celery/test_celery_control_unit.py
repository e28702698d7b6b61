"""Celery's remote control, event and meta messages, built and read without Redis.

The real-worker side (workers obey these messages, and send what is decoded here) is in
tests/celery/test_celery_control.py. Here: the exact shapes, checked against Celery's
own builders where Celery has one, and hostile input for every decoder.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import redis.asyncio
from celery import Celery  # type: ignore[import-untyped]
from celery.exceptions import TaskRevokedError  # type: ignore[import-untyped]

from jobbridge.adapters.celery import worker_state
from jobbridge.adapters.celery import workers as celery_workers
from jobbridge.adapters.celery.control import (
    EMPTY_EMBED,
    TASK_HEADERS,
    build_task_message,
    control_envelope,
    events_pattern,
    pidbox_channel,
    reply_binding,
    reply_list,
    reply_to,
    revoke_envelope,
    revoked_meta,
    validate_task_message,
)
from jobbridge.adapters.celery.envelope import (
    MAX_ENVELOPE_BYTES,
    MAX_EVENTS,
    MAX_REPR_CHARS,
    decode_event,
    decode_reply,
    short_repr,
)
from jobbridge.adapters.celery.messages import decode_message
from jobbridge.adapters.celery.result_meta import decode_result_meta
from jobbridge.adapters.celery.workers import WorkerWatch
from jobbridge.adapters.fields import MAX_NAME_CHARS
from tests.celery.celery_unacked_seed import events_channel

#: a worker-heartbeat message as a celery 5.7 worker published it on /3.celeryev/worker.heartbeat
REAL_HEARTBEAT = (
    b'{"body": "eyJob3N0bmFtZSI6ICJleHAxQGpidGVzdCIsICJ1dGNvZmZzZXQiOiAwLjAsICJwaWQiOiA3NzA5LCA'
    b"iY2xvY2siOiAzLCAiZnJlcSI6IDIuMCwgImFjdGl2ZSI6IDAsICJwcm9jZXNzZWQiOiAwLCAibG9hZGF2ZyI6IFswLj"
    b"gsIDAuMzgsIDAuMTddLCAic3dfaWRlbnQiOiAicHktY2VsZXJ5IiwgInN3X3ZlciI6ICI1LjcuMCIsICJzd19zeXMiO"
    b"iAiTGludXgiLCAidGltZXN0YW1wIjogMTc5NjMxODczOS4zNjUzODEsICJ0eXBlIjogIndvcmtlci1oZWFydGJlYXQi"
    b'fQ==", "content-encoding": "utf-8", "content-type": "application/json", "headers": '
    b'{"hostname": "exp1@jbtest"}, "properties": {"delivery_mode": 1, "delivery_info": '
    b'{"exchange": "celeryev", "routing_key": "worker.heartbeat"}, "priority": 0, '
    b'"body_encoding": "base64", "delivery_tag": "5c6ddaee-9954-4d7e-bc7f-9cda9e18b154"}}'
)
#: a worker's reply to a ``reserved`` broadcast, as it LPUSHed it onto the reply list
REAL_REPLY = (
    b'{"body": "eyJleHAxQGpidGVzdCI6IFtdfQ==", "content-encoding": "utf-8", "content-type": '
    b'"application/json", "headers": {"ticket": "a5cac83b-2860-439b-910c-cbd4cb04d255", '
    b'"clock": 12}, "properties": {"delivery_mode": 1, "delivery_info": {"exchange": '
    b'"reply.celery.pidbox", "routing_key": "bc04479e-0181-3aab-bb14-1bb9d3b01997"}, '
    b'"priority": 0, "body_encoding": "base64", "delivery_tag": '
    b'"bed97b1d-c127-4a34-90d4-17c9cc489a1c"}}'
)


def envelope(
    body: Any,
    *,
    content_type: str = "application/json",
    headers: dict[str, Any] | None = None,
    encoding: str | None = "base64",
) -> bytes:
    """A kombu envelope around ``body`` (JSON-encoded, then base64 unless told)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    properties: dict[str, Any] = {"delivery_info": {}, "delivery_tag": "t"}
    if encoding is not None:
        properties["body_encoding"] = encoding
    text = base64.b64encode(data).decode() if encoding == "base64" else data.decode()
    return json.dumps(
        {
            "body": text,
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": headers or {},
            "properties": properties,
        }
    ).encode()


def opened(raw: bytes) -> tuple[dict[str, Any], Any]:
    """An envelope and its decoded base64 JSON body."""
    env = json.loads(raw)
    return env, json.loads(base64.b64decode(env["body"]))


# ------------------------------------------------------------------ channels and keys


def test_channels_follow_kombus_fanout_prefix():
    assert pidbox_channel("", 0) == "/0.celery.pidbox"
    assert pidbox_channel("app:", 5) == "app:/5.celery.pidbox"
    assert events_channel("", 3, "worker-heartbeat") == "/3.celeryev/worker.heartbeat"
    assert events_channel("p.", 0, "task-multi") == "p./0.celeryev/task.multi"
    with pytest.raises(ValueError):
        pidbox_channel("", -1)
    with pytest.raises(ValueError):
        pidbox_channel("", True)


def test_events_pattern_matches_its_group_only():
    everything = events_pattern("", 0)
    workers = events_pattern("", 0, "worker")
    assert everything == "/0.celeryev/*"
    assert workers == "/0.celeryev/worker.*"
    for event in ("worker-online", "worker-heartbeat", "worker-offline"):
        assert fnmatch.fnmatchcase(events_channel("", 0, event), workers)
    assert not fnmatch.fnmatchcase(events_channel("", 0, "task-received"), workers)
    assert fnmatch.fnmatchcase(events_channel("", 0, "task-received"), everything)
    assert not fnmatch.fnmatchcase(events_channel("", 1, "worker-online"), workers)
    # Glob characters of a prefix match only themselves.
    assert events_pattern("a*[b]?", 2, "worker") == "a\\*\\[b\\]\\?/2.celeryev/worker.*"


def test_reply_names():
    oid = "72a3a6fc-2ac4-37ba-be1b-621c64a06a4f"
    assert reply_to(oid) == {"exchange": "reply.celery.pidbox", "routing_key": oid}
    assert reply_list("", oid) == f"{oid}.reply.celery.pidbox"
    assert reply_list("app:", oid) == f"app:{oid}.reply.celery.pidbox"
    key, member = reply_binding("app:", oid)
    assert key == "app:_kombu.binding.reply.celery.pidbox"
    # routing key, pattern and queue, as Celery's own client binds it (seen in MONITOR)
    assert member == f"{oid}\x06\x16\x06\x16{oid}.reply.celery.pidbox"


# ------------------------------------------------------------------ control


def test_control_envelope_is_kombus_broadcast():
    raw = control_envelope(
        "stats",
        {},
        ticket="tick",
        reply_to=reply_to("oid"),
        now=1000.0,
        timeout=1.0,
        clock=7,
    )
    env, body = opened(raw)
    assert list(env) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert env["content-type"] == "application/json"
    assert env["content-encoding"] == "utf-8"
    assert env["headers"] == {"clock": 7, "expires": 1001.0}
    props = env["properties"]
    assert list(props) == [
        "delivery_mode",
        "delivery_info",
        "priority",
        "body_encoding",
        "delivery_tag",
    ]
    assert props["delivery_info"] == {"exchange": "celery.pidbox", "routing_key": ""}
    assert props["body_encoding"] == "base64"
    assert uuid.UUID(props["delivery_tag"]).version == 4
    assert list(body) == [
        "method",
        "arguments",
        "destination",
        "pattern",
        "matcher",
        "ticket",
        "reply_to",
    ]
    assert body["method"] == "stats"
    assert body["reply_to"] == {"exchange": "reply.celery.pidbox", "routing_key": "oid"}
    assert body["destination"] is None
    assert body["pattern"] is None and body["matcher"] is None


#: what celery 5.7's ``app.control.inspect().stats()`` PUBLISHed on /3.celery.pidbox (MONITOR)
REAL_STATS_BROADCAST = (
    b'{"body": "eyJtZXRob2QiOiAic3RhdHMiLCAiYXJndW1lbnRzIjoge30sICJkZXN0aW5hdGlvbiI6IG51bGwsICJ'
    b"wYXR0ZXJuIjogbnVsbCwgIm1hdGNoZXIiOiBudWxsLCAidGlja2V0IjogIjQ5YzM2YTQzLTU0YzMtNGRhZi1iNDJjLT"
    b"UwZjhlZGU3ZTQzNSIsICJyZXBseV90byI6IHsiZXhjaGFuZ2UiOiAicmVwbHkuY2VsZXJ5LnBpZGJveCIsICJyb3V0a"
    b'W5nX2tleSI6ICI3MmEzYTZmYy0yYWM0LTM3YmEtYmUxYi02MjFjNjRhMDZhNGYifX0=", "content-encoding":'
    b' "utf-8", "content-type": "application/json", "headers": {"clock": 2, "expires": '
    b'1796318754.3715696}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": '
    b'"celery.pidbox", "routing_key": ""}, "priority": 0, "body_encoding": "base64", '
    b'"delivery_tag": "dbf7d418-2038-4d80-9edf-d6bdfcb4dc75"}}'
)


def test_control_envelope_is_byte_for_byte_celerys():
    mine = control_envelope(
        "stats",
        {},
        ticket="49c36a43-54c3-4daf-b42c-50f8ede7e435",
        reply_to=reply_to("72a3a6fc-2ac4-37ba-be1b-621c64a06a4f"),
        now=1796318753.3715696,
        timeout=1.0,
        clock=2,
    )
    tag = json.loads(mine)["properties"]["delivery_tag"].encode()
    # only the delivery tag, a fresh uuid4 per publish, differs
    assert mine.replace(tag, b"dbf7d418-2038-4d80-9edf-d6bdfcb4dc75") == REAL_STATS_BROADCAST


def test_control_envelope_options():
    before = time.time()
    raw = control_envelope("ping", {"a": [1, 2]}, ticket="t", destination=["w1@h"])
    env, body = opened(raw)
    assert body["destination"] == ["w1@h"]
    assert body["arguments"] == {"a": [1, 2]}
    assert "reply_to" not in body
    assert before + 1 <= env["headers"]["expires"] <= time.time() + 1
    assert env["headers"]["clock"] >= 1
    again = json.loads(control_envelope("ping", {}, ticket="t", timeout=0))
    assert again["headers"]["expires"] == 0
    assert again["properties"]["delivery_tag"] != env["properties"]["delivery_tag"]
    assert again["headers"]["clock"] > env["headers"]["clock"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: control_envelope("", {}, ticket="t"),
        lambda: control_envelope("ping", {}, ticket=""),
        lambda: control_envelope("ping", {}, ticket="t", destination="w1@h"),
        lambda: control_envelope("ping", {"x": {1, 2}}, ticket="t"),
        lambda: control_envelope("ping", {"x": b"bytes"}, ticket="t"),
        lambda: control_envelope("ping", {"x": math.nan}, ticket="t"),
        lambda: control_envelope("ping", {"x": {1: "int key"}}, ticket="t"),
        lambda: control_envelope("ping", {"x": object()}, ticket="t"),
        lambda: control_envelope("ping", {"x": "\ud800"}, ticket="t"),
        lambda: revoke_envelope("", ticket="t"),
    ],
)
def test_control_envelope_refuses_what_is_not_plain_json(call: Callable[[], bytes]):
    with pytest.raises(ValueError):
        call()


def test_revoke_envelope_carries_celerys_arguments():
    _, body = opened(revoke_envelope("abc", ticket="t"))
    assert body["method"] == "revoke"
    assert body["arguments"] == {"task_id": "abc", "terminate": False, "signal": "SIGTERM"}
    _, body = opened(revoke_envelope("abc", terminate=True, signal="SIGKILL", ticket="t"))
    assert body["arguments"] == {"task_id": "abc", "terminate": True, "signal": "SIGKILL"}
    assert body["ticket"] == "t"


# ------------------------------------------------------------------ revoked meta


@pytest.fixture(scope="module")
def backend() -> Any:
    """Celery's own result backend code (an in-memory cache: no broker, no Redis)."""
    app = Celery("unit", backend="cache+memory://", set_as_current=False)
    return app.backend


def test_revoked_meta_plain_is_what_a_worker_stores_for_an_unknown_id(backend: Any):
    done = datetime(2026, 12, 3, 17, 25, 53, 369984, tzinfo=UTC)
    raw = revoked_meta(
        "abc-123",
        date_done=done,
        name=None,
        args=None,
        kwargs=None,
        queue=None,
        parent_id=None,
        root_id=None,
        extended=False,
    )
    # byte for byte what a celery 5.7 worker SETEXed for ``revoke("abc-123")`` (MONITOR)
    assert raw == (
        b'{"status": "REVOKED", "result": {"exc_type": "TaskRevokedError", "exc_message": '
        b'["revoked"], "exc_module": "celery.exceptions"}, "traceback": null, "children": null, '
        b'"date_done": "2026-12-03T17:25:53.369984+00:00", "task_id": "abc-123"}'
    )
    meta = backend.decode_result(raw)
    assert meta["status"] == "REVOKED"
    assert isinstance(meta["result"], TaskRevokedError)
    assert decode_result_meta(raw).problem is None
    assert decode_result_meta(raw).error == "TaskRevokedError: revoked"


def test_revoked_meta_extended(backend: Any):
    done = datetime(2026, 12, 3, 18, 0, tzinfo=timezone(timedelta(hours=1)))
    raw = revoked_meta(
        "t1",
        date_done=done,
        name="examples.celery_app.record",
        args=["t"],
        kwargs={"k": 1},
        queue="celery",
        parent_id="PP",
        root_id="RR",
        extended=True,
        group_id="G",
    )
    meta = json.loads(raw)
    # the order a worker writes when it revokes a task it knows, under result_extended
    assert list(meta) == [
        "status",
        "result",
        "traceback",
        "children",
        "date_done",
        "group_id",
        "parent_id",
        "name",
        "args",
        "kwargs",
        "worker",
        "retries",
        "queue",
        "task_id",
    ]
    assert meta["date_done"] == "2026-12-03T17:00:00+00:00"
    assert meta["children"] == []
    assert (meta["args"], meta["kwargs"], meta["queue"]) == (["t"], {"k": 1}, "celery")
    assert meta["retries"] == 0 and meta["worker"] is None
    assert "root_id" not in meta
    assert isinstance(backend.decode_result(raw)["result"], TaskRevokedError)
    decoded = decode_result_meta(raw)
    assert decoded.problem is None
    assert (decoded.name, decoded.parent_id, decoded.group_id) == (
        "examples.celery_app.record",
        "PP",
        "G",
    )


def test_revoked_meta_refuses_naive_dates_and_unplain_args():
    common: dict[str, Any] = dict(
        name="n", kwargs={}, queue="q", parent_id=None, root_id=None, extended=True
    )
    with pytest.raises(ValueError):
        revoked_meta("t", date_done=datetime(2026, 1, 1), args=[], **common)
    with pytest.raises(ValueError):
        revoked_meta("t", date_done=datetime.now(UTC), args=[{1, 2}], **common)


# ------------------------------------------------------------------ task messages


def message(**changes: Any) -> bytes:
    options: dict[str, Any] = dict(
        task="examples.celery_app.add",
        task_id=str(uuid.uuid4()),
        args=[2, 3],
        kwargs={"principal_id": "u1"},
        queue="celery",
        priority=None,
        parent_id="p1",
        root_id="r1",
        origin="jobbridge@test",
    )
    options.update(changes)
    return build_task_message(**options)


def test_build_task_message_has_celerys_full_header_set():
    task_id = str(uuid.uuid4())
    raw = message(task_id=task_id, priority=6, group="g1")
    env, body = opened(raw)
    assert list(env) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert (env["content-type"], env["content-encoding"]) == ("application/json", "utf-8")
    headers = env["headers"]
    assert tuple(headers) == TASK_HEADERS
    assert headers["task"] == "examples.celery_app.add"
    assert headers["id"] == task_id
    assert (headers["parent_id"], headers["root_id"], headers["group"]) == ("p1", "r1", "g1")
    assert headers["retries"] == 0
    assert headers["timelimit"] == [None, None]
    assert headers["stamps"] == {} and headers["stamped_headers"] is None
    assert headers["ignore_result"] is False
    assert headers["replaced_task_nesting"] == 0
    assert headers["argsrepr"] == "(2, 3)"
    assert headers["kwargsrepr"] == "{'principal_id': 'u1'}"
    assert headers["origin"] == "jobbridge@test"
    props = env["properties"]
    assert props["correlation_id"] == task_id
    assert props["reply_to"] == ""
    assert props["delivery_mode"] == 2
    assert props["delivery_info"] == {"exchange": "", "routing_key": "celery"}
    assert props["priority"] == 6
    assert props["body_encoding"] == "base64"
    assert uuid.UUID(props["delivery_tag"]).version == 4
    assert body == [[2, 3], {"principal_id": "u1"}, dict(EMPTY_EMBED)]
    assert json.loads(message(priority=None))["properties"]["priority"] == 0

    decoded = decode_message(raw)
    assert decoded.problem is None
    assert (decoded.task_id, decoded.parent_id, decoded.root_id) == (task_id, "p1", "r1")
    assert decoded.principal == "u1"
    assert validate_task_message(raw, queue="celery") is None


def test_build_task_message_headers_are_those_celery_builds():
    app = Celery("unit", set_as_current=False)
    made = app.amqp.as_task_v2(
        "id1",
        "examples.celery_app.add",
        args=(2, "x" * 3000),
        kwargs={"k": [1, {"a": None}]},
        parent_id="p",
        root_id="r",
    )
    env, body = opened(
        message(
            task_id="id1",
            args=[2, "x" * 3000],
            kwargs={"k": [1, {"a": None}]},
            parent_id="p",
            root_id="r",
        )
    )
    assert list(env["headers"]) == list(made.headers)
    for name in ("lang", "task", "id", "retries", "timelimit", "root_id", "parent_id"):
        assert env["headers"][name] == (
            list(made.headers[name]) if name == "timelimit" else made.headers[name]
        ), name
    # Celery's saferepr cuts inside the long string; the start is the same repr
    assert env["headers"]["argsrepr"][:1000] == made.headers["argsrepr"][:1000]
    assert env["headers"]["kwargsrepr"] == made.headers["kwargsrepr"]
    assert body[2] == made.body[2]
    assert set(made.properties) <= set(env["properties"])


@pytest.mark.parametrize(
    "changes",
    [
        {"task": ""},
        {"task_id": ""},
        {"queue": ""},
        {"args": "not a list"},
        {"kwargs": [1]},
        {"args": [b"bytes"]},
        {"args": [math.inf]},
        {"kwargs": {"when": datetime.now(UTC)}},
        {"kwargs": {1: "int key"}},
        {"priority": 10},
        {"priority": -1},
        {"priority": True},
        {"priority": "5"},
    ],
)
def test_build_task_message_refuses(changes: dict[str, Any]):
    with pytest.raises(ValueError):
        message(**changes)


def test_build_task_message_refuses_too_deep_arguments():
    deep: Any = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        message(args=[deep])


def test_short_repr_is_pythons_repr_cut_at_1024():
    value = {"a": [1, 2.5, None, True, "x'y"], "b": {"c": ()}}
    assert short_repr(value) == repr(value)
    assert short_repr((1,)) == "(1,)"
    assert short_repr(()) == "()"
    assert short_repr(([],)) == "([],)"
    long = short_repr(("x" * 5000,))
    assert len(long) == MAX_REPR_CHARS and long.endswith("...")
    assert long.startswith("('xxx")
    # A huge value costs only what is shown.
    huge = list(range(2_000_000))
    started = time.perf_counter()
    shown = short_repr(huge)
    assert time.perf_counter() - started < 0.05
    assert len(shown) == MAX_REPR_CHARS and shown.startswith("[0, 1, 2")
    raw = message(args=["x" * 5000], kwargs={"k": "y" * 5000})
    headers = json.loads(raw)["headers"]
    assert len(headers["argsrepr"]) <= MAX_REPR_CHARS
    assert len(headers["kwargsrepr"]) <= MAX_REPR_CHARS
    assert validate_task_message(raw, queue="celery") is None


# ------------------------------------------------------------------ validation


def mutated(change: Callable[[dict[str, Any]], None], body: Any = None) -> bytes:
    env = json.loads(message())
    if body is not None:
        env["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    change(env)
    return json.dumps(env).encode()


def drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(env: dict[str, Any]) -> None:
        target = env
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return change


def put(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def change(env: dict[str, Any]) -> None:
        target = env
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def same(env: dict[str, Any]) -> None:
    pass


@pytest.mark.parametrize(
    ("change", "body", "words"),
    [
        (drop("content-type"), None, "content-type"),
        (put("application/x-python-serialize", "content-type"), None, "content-type"),
        (put("binary", "content-encoding"), None, "content-encoding"),
        (drop("headers", "task"), None, "headers lack task"),
        (put("", "headers", "task"), None, "headers.task"),
        (drop("headers", "id"), None, "no task id"),
        (put(7, "headers", "id"), None, "headers.id"),
        (drop("headers", "stamps"), None, "headers lack stamps"),
        (put(1, "headers", "retries"), None, "retries is not 0"),
        (put(False, "headers", "retries"), None, "retries is not 0"),
        (put([10, None], "headers", "timelimit"), None, "timelimit"),
        (put({"a": ["b"]}, "headers", "stamps"), None, "stamps"),
        (put("x" * 2000, "headers", "argsrepr"), None, "argsrepr"),
        (put("", "headers", "origin"), None, "origin"),
        (put("rb", "headers", "lang"), None, "lang"),
        (put(5, "headers", "parent_id"), None, "parent_id"),
        (put("zlib", "headers", "compression"), None, "compressed"),
        (drop("properties", "body_encoding"), None, "body_encoding"),
        (drop("properties", "delivery_tag"), None, "delivery_tag"),
        (drop("properties", "delivery_info"), None, "delivery_info"),
        (put({}, "properties", "delivery_info"), None, "delivery_info"),
        (put("celery", "properties", "delivery_info", "exchange"), None, "exchange"),
        (put("other", "properties", "delivery_info", "routing_key"), None, "routing_key"),
        (put("nope", "properties", "correlation_id"), None, "correlation_id"),
        (put(1, "properties", "delivery_mode"), None, "delivery_mode"),
        (put(10, "properties", "priority"), None, "priority"),
        (put(None, "properties", "priority"), None, "priority"),
        (put(True, "properties", "priority"), None, "priority"),
        (drop("properties"), None, "no properties"),
        (put([], "headers"), None, "no headers"),
        (same, [[1], {}], "[args, kwargs, embed]"),
        (same, [[1], {}, {}, {}], "[args, kwargs, embed]"),
        (same, [{}, {}, None], "args is not a list"),
        (same, [[], [], None], "kwargs not a dict"),
        (same, [[], {}, []], "embed"),
        (same, "a string", "[args, kwargs, embed]"),
        (put("%%% not base64", "body"), None, "base64"),
        (put(12, "body"), None, "base64 text"),
    ],
)
def test_validate_task_message_names_each_broken_rule(
    change: Callable[[dict[str, Any]], None], body: Any, words: str
):
    problem = validate_task_message(mutated(change, body), queue="celery")
    assert problem is not None
    assert words in problem


def test_validate_task_message_accepts_a_null_embed_and_refuses_garbage():
    assert validate_task_message(mutated(same, [[1], {"a": 1}, None]), queue="celery") is None
    assert "not JSON" in (validate_task_message(b"\x80\x81 garbage", queue="celery") or "")
    assert "not an object" in (validate_task_message(b"[1, 2]", queue="celery") or "")
    assert "not JSON" in (validate_task_message(b'{"a": NaN}', queue="celery") or "")
    assert "routing_key" in (validate_task_message(message(), queue="mail") or "")


# ------------------------------------------------------------------ events


def test_decode_event_reads_a_real_heartbeat():
    (event,) = decode_event(REAL_HEARTBEAT)
    assert event["type"] == "worker-heartbeat"
    assert event["hostname"] == "exp1@jbtest"
    assert event["freq"] == 2.0
    assert event["active"] == 0 and event["processed"] == 0
    assert event["loadavg"] == [0.8, 0.38, 0.17]
    assert event["sw_ver"] == "5.7.0"


def test_decode_event_unpacks_task_multi_and_keeps_only_typed_maps():
    events = [
        {"type": "task-received", "uuid": "a"},
        {"type": "task-started", "uuid": "a"},
        {"no": "type"},
        {"type": 5},
        "text",
        None,
        [{"type": "nested"}],
    ]
    assert [e["uuid"] for e in decode_event(envelope(events))] == ["a", "a"]
    many = [{"type": "task-sent", "n": n} for n in range(MAX_EVENTS + 50)]
    decoded = decode_event(envelope(many))
    assert len(decoded) == MAX_EVENTS
    # kombu leaves a body unencoded when there is no body_encoding
    assert decode_event(envelope({"type": "x"}, encoding=None)) == [{"type": "x"}]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff garbage",
        b"null",
        b"[]",
        b'"text"',
        b'{"body": 5, "content-type": "application/json"}',
        envelope({"type": "x"}, content_type="application/x-python-serialize"),
        envelope(b"\x80\x04K\x01.", content_type="application/x-python-serialize"),
        envelope({"type": "x"}, content_type="application/x-yaml"),
        envelope({"type": "x"}, headers={"compression": "application/x-gzip"}),
        envelope({"type": "x"}, encoding="rot13"),
        envelope(b'{"type": "x", "n": NaN}'),
        envelope(b'{"type": "\\ud800"}'),
        envelope(b"[" * 5000 + b"]" * 5000),
        envelope(b"\xff\xfe not utf-8"),
        envelope(b"not json"),
        envelope({"type": "x"}).replace(b'"body": "', b'"body": "%%%'),
        envelope({"type": "x", "pad": "y" * MAX_ENVELOPE_BYTES}),
    ],
)
def test_decode_event_refuses_hostile_messages(raw: bytes):
    assert decode_event(raw) == []


def test_decode_event_never_raises_on_odd_arguments():
    for odd in (None, 5, "text", bytearray(b"{}"), memoryview(b"{}")):
        assert decode_event(odd) == []  # type: ignore[arg-type]


# ------------------------------------------------------------------ replies


def test_decode_reply_reads_a_real_reply():
    assert decode_reply(REAL_REPLY) == {"exp1@jbtest": []}
    assert decode_reply(REAL_REPLY, ticket="a5cac83b-2860-439b-910c-cbd4cb04d255") == {
        "exp1@jbtest": []
    }
    assert decode_reply(REAL_REPLY, ticket="another broadcast") is None
    assert decode_reply(REAL_REPLY, max_bytes=100) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        envelope([1, 2]),
        envelope("text"),
        envelope({"w@h": 1}, content_type="application/x-python-serialize"),
        envelope({"w@h": 1}, headers={"compression": "zlib"}),
        envelope(b"{bad json"),
    ],
)
def test_decode_reply_refuses_hostile_replies(raw: bytes):
    assert decode_reply(raw) is None


# ------------------------------------------------------------------ the watch, fed by hand


def event(kind: str = "worker-heartbeat", **fields: Any) -> bytes:
    body = {
        "hostname": "w1@host",
        "freq": 2.0,
        "active": 1,
        "processed": 10,
        "pid": 123,
        "loadavg": [0.1, 0.2, 0.3],
        "sw_ident": "py-celery",
        "sw_ver": "5.7.0",
        "timestamp": time.time(),
        "type": kind,
    }
    body.update(fields)
    return envelope({k: v for k, v in body.items() if v is not ...})


@pytest.fixture
def watch() -> WorkerWatch:
    """A watch that is never started: it only reads what the tests hand it."""
    return WorkerWatch(
        redis.asyncio.Redis(host="unused.invalid"), global_keyprefix="", db=0, source="unit"
    )


def test_watch_reads_heartbeats(watch: WorkerWatch):
    now = time.monotonic()
    stamp = 1_796_318_739.25
    watch.on_message(event("worker-online", timestamp=stamp), now)
    (details,) = watch.details()
    worker = details.worker
    assert worker.name == "w1@host" and worker.hostname == "host"
    assert worker.state == "online"
    assert worker.last_heartbeat == datetime.fromtimestamp(stamp, UTC)
    assert worker.birth == worker.last_heartbeat
    assert (worker.active, worker.pid) == (1, 123)
    assert worker.successful is None and worker.failed is None
    assert (details.processed, details.loadavg, details.sw_ver) == (10, (0.1, 0.2, 0.3), "5.7.0")
    # Celery's rule: online until freq x 2 after the heartbeat arrived
    watch.on_message(event(freq=0.1), now)
    assert watch.workers()[0].state == "online"
    time.sleep(0.25)
    assert watch.workers()[0].state == "offline"
    assert watch.online() == 0
    watch.on_message(event(), time.monotonic())
    assert watch.workers()[0].state == "online"
    watch.on_message(event("worker-offline"), time.monotonic())
    assert watch.workers()[0].state == "offline"


def test_watch_forgets_workers_offline_for_ten_minutes(watch: WorkerWatch):
    long_ago = time.monotonic() - worker_state.FORGET_AFTER_S - 10
    watch.on_message(event(hostname="old@h"), long_ago)
    watch.on_message(event(hostname="new@h"), time.monotonic())
    assert [w.name for w in watch.workers()] == ["new@h"]
    watch._prune(time.monotonic())
    assert list(watch._hosts) == ["new@h"]


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage",
        envelope(["not", "an", "event"]),
        envelope({"type": "worker-heartbeat"}),
        envelope({"type": "worker-heartbeat", "hostname": ["list"]}),
        envelope({"type": "worker-heartbeat", "hostname": ""}),
        envelope({"type": "task-received", "hostname": "w@h", "timestamp": 1.0}),
        envelope({"type": "worker-heartbeat", "hostname": "big@h", "pad": "x" * 20_000}),
    ],
)
def test_watch_ignores_what_is_not_a_worker_event(watch: WorkerWatch, raw: bytes):
    watch.on_message(raw, time.monotonic())
    watch.on_message("text", time.monotonic())
    watch.on_message(None, time.monotonic())
    assert watch.workers() == ()


def test_watch_reads_wrong_types_as_unknown(watch: WorkerWatch):
    watch.on_message(
        event(
            hostname="h" * 5000,
            freq="fast",
            active=-1,
            processed=2**70,
            pid=True,
            loadavg=[1, "x", 2],
            sw_ident={"a": 1},
            sw_ver="v" * 5000,
            timestamp="yesterday",
        ),
        time.monotonic(),
    )
    (details,) = watch.details()
    worker = details.worker
    assert len(worker.name) < MAX_NAME_CHARS + 40
    # no timestamp: as Celery, the heartbeat proves nothing
    assert worker.state == "offline"
    assert worker.last_heartbeat is None
    assert (worker.active, worker.pid, details.processed, details.loadavg) == (None,) * 4
    assert details.freq == worker_state.DEFAULT_FREQ
    assert details.sw_ident is None
    assert details.sw_ver is not None and len(details.sw_ver) < MAX_NAME_CHARS + 40
    for stamp in (-5, 1e20, math.inf, True):
        watch.on_message(event(hostname="t@h", timestamp=stamp), time.monotonic())
    assert next(w for w in watch.workers() if w.name == "t@h").last_heartbeat is None


def test_watch_tracks_at_most_max_hosts_and_shows_200(watch: WorkerWatch):
    now = time.monotonic()
    hosts = [f"w{n:05}@h" for n in range(celery_workers.MAX_HOSTS + 200)]
    started = time.perf_counter()
    for index, name in enumerate(hosts):
        watch.on_message(event(hostname=name), now + index * 1e-6)
    assert time.perf_counter() - started < 5
    assert len(watch._hosts) == celery_workers.MAX_HOSTS
    shown = watch.workers()
    assert len(shown) == celery_workers.MAX_SHOWN
    assert [w.name for w in shown] == sorted(w.name for w in shown)
    # the hosts heard from least recently made room
    assert "w00000@h" not in watch._hosts
    assert hosts[-1] in watch._hosts


def test_watch_message_work_is_bounded(watch: WorkerWatch):
    # The most a message the watch reads can carry: a list of short events under its cap.
    batch = [
        {"type": "worker-heartbeat", "hostname": f"m{n}@h", "timestamp": 1.0 + n}
        for n in range(140)
    ]
    raw = envelope(batch)
    assert len(raw) <= celery_workers.MAX_EVENT_MESSAGE_BYTES
    started = time.perf_counter()
    watch.on_message(raw, time.monotonic())
    # well under the 20 ms the event loop may be held, even on a slow machine
    assert time.perf_counter() - started < 0.02
    assert len(watch._hosts) == 140


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {
                "pool": {
                    "implementation": "celery.concurrency.prefork:TaskPool",
                    "max-concurrency": 2,
                }
            },
            ("prefork", 2),
        ),
        (
            {"pool": {"implementation": "celery.concurrency.solo:TaskPool", "max-concurrency": 1}},
            ("solo", 1),
        ),
        (
            {
                "pool": {
                    "implementation": "celery.concurrency.thread:TaskPool",
                    "max-concurrency": 8,
                }
            },
            ("threads", 8),
        ),
        (
            {"pool": {"implementation": "x" * 5000, "max-concurrency": "2"}},
            ("x" * 200 + "… [800 more characters]", None),
        ),
        ({"pool": "prefork"}, (None, None)),
        ([], (None, None)),
        ({"pool": {"implementation": 5, "max-concurrency": -3}}, (None, None)),
    ],
)
def test_pool_of_stats_answers(answer: Any, expected: tuple[str | None, int | None]):
    assert worker_state.read_pool(answer) == expected


def test_queues_of_active_queues_answers():
    answer = [{"name": "celery"}, {"name": 5}, "x", {"name": ""}, {"name": "mail"}]
    assert worker_state.read_queues(answer) == ("celery", "mail")
    assert worker_state.read_queues({"name": "celery"}) == ()
    assert len(worker_state.read_queues([{"name": f"q{n}"} for n in range(500)])) == 100
