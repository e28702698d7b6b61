"""Celery's task messages and result metas: made by real Celery where possible, then read raw."""

from __future__ import annotations

import base64
import json
import pickle
import time
import warnings
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery

from jobbridge.adapters.celery.keys import CeleryKeys, clamp_priority, result_keyprefix
from jobbridge.adapters.celery.messages import (
    CeleryMessage,
    decode_message,
    decode_unacked,
    preview,
)
from jobbridge.adapters.celery.result_meta import decode_result_meta
from jobbridge.adapters.payloads import PREVIEW_CHARS

KEYS = CeleryKeys()


def _add(a: int, b: int = 0) -> int:
    return a + b


@pytest.fixture
def celery_app(redis_url: str) -> Iterator[Celery]:
    app = Celery("t", broker=redis_url, backend=redis_url)
    app.conf.accept_content = ["json", "pickle"]
    app.conf.result_extended = True

    app.task(name="tasks.add", shared=False)(_add)
    yield app
    app.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def only(client: redis.Redis, key: str) -> bytes:
    elements = client.lrange(key, 0, -1)
    assert len(elements) == 1, elements
    return elements[0]


def envelope(payload: bytes, **changes: Any) -> bytes:
    """A well-formed protocol 2 message around ``payload``, with top-level changes."""
    message: dict[str, Any] = {
        "body": base64.b64encode(payload).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "tasks.add", "id": "id-1", "retries": 0},
        "properties": {
            "delivery_tag": "tag-1",
            "delivery_info": {"exchange": "", "routing_key": "celery"},
            "priority": 0,
            "body_encoding": "base64",
        },
    }
    message.update(changes)
    return json.dumps(message).encode()


# ------------------------------------------------------------------ keys


def test_keys_priority_lists_and_steps() -> None:
    assert KEYS.priority_lists("q") == ("q", "q\x06\x163", "q\x06\x166", "q\x06\x169")
    assert [KEYS.step_of(p) for p in (0, 1, 2, 3, 5, 6, 8, 9, 12, -4)] == [
        0,
        0,
        0,
        3,
        3,
        6,
        6,
        9,
        9,
        0,
    ]
    assert KEYS.step_of(None) == 0 and KEYS.step_of("x") == 0 and KEYS.step_of(float("inf")) == 0
    assert clamp_priority(True) == 1 and clamp_priority("7") == 7
    prefixed = CeleryKeys(global_keyprefix="p:")
    assert prefixed.priority_list("q", 7) == "p:q\x06\x166"
    assert prefixed.unacked == "p:unacked"
    assert prefixed.unacked_index == "p:unacked_index"
    assert prefixed.unacked_mutex == "p:unacked_mutex"
    assert prefixed.binding("celery") == "p:_kombu.binding.celery"
    assert prefixed.binding_permanent("celery") == "p:_kombu.binding_permanent.celery"
    assert prefixed.exchange_of_binding_key("p:_kombu.binding.x") == "x"


def test_keys_bindings_and_results() -> None:
    assert KEYS.queue_of_binding(b"celery\x06\x16\x06\x16celery") == "celery"
    assert KEYS.queue_of_binding("a\x06\x16b") is None
    assert KEYS.task_meta("abc") == "celery-task-meta-abc"
    assert result_keyprefix("app") == "app_" and result_keyprefix("app:") == "app:"
    assert CeleryKeys(result_global_keyprefix="app").task_meta("x") == "app_celery-task-meta-x"
    with pytest.raises(ValueError):
        CeleryKeys(priority_steps=())


@pytest.mark.redis
def test_keys_match_what_kombu_writes(celery_app: Celery, raw: redis.Redis) -> None:
    for priority in (0, 2, 4, 7, 9):
        celery_app.send_task("tasks.add", args=(priority,), queue="pq", priority=priority)
    for step, key in zip((0, 3, 6, 9), KEYS.priority_lists("pq"), strict=True):
        assert raw.llen(key) == {0: 2, 3: 1, 6: 1, 9: 1}[step]
    members = raw.smembers(KEYS.binding("pq"))
    assert {KEYS.queue_of_binding(m) for m in members} == {"pq"}
    assert raw.smembers(KEYS.binding_permanent("pq")) == members


# ------------------------------------------------------------------ real messages


@pytest.mark.redis
def test_decode_send_task_with_priority_and_queue(celery_app: Celery, raw: redis.Redis) -> None:
    result = celery_app.send_task(
        "tasks.add",
        args=(2,),
        kwargs={"b": 5, "user_id": "u1", "request_id": "r-9"},
        priority=7,
        queue="q1",
    )
    message = decode_message(only(raw, KEYS.priority_list("q1", 7)))
    assert message.problem is None
    assert message.protocol == 2
    assert message.task == "tasks.add" and message.task_id == result.id
    assert message.args == [2] and message.kwargs == {"b": 5, "user_id": "u1", "request_id": "r-9"}
    assert message.priority == 7 and message.serializer == "json"
    assert message.routing_key == "q1" and message.exchange == ""
    assert message.root_id == result.id and message.parent_id is None
    assert message.retries == 0 and message.eta is None and message.expires is None
    assert message.principal == "u1" and message.correlation == "r-9"
    assert message.argsrepr == "(2,)" and message.delivery_tag
    assert message.content_type == "application/json" and message.content_encoding == "utf-8"
    assert message.origin and not message.redelivered
    assert preview(message) == "tasks.add(2, b=5, user_id='u1', request_id='r-9')"


@pytest.mark.redis
def test_decode_pickle_zlib_with_countdown(celery_app: Celery, raw: redis.Redis) -> None:
    add = celery_app.tasks["tasks.add"]
    before = datetime.now(tz=UTC)
    result = add.apply_async(
        (1, 2), countdown=60, expires=600, serializer="pickle", compression="zlib", queue="q2"
    )
    message = decode_message(only(raw, "q2"))
    assert message.problem is None, message.problem
    assert message.serializer == "pickle" and message.compression == "application/x-gzip"
    assert message.content_type == "application/x-python-serialize"
    assert message.content_encoding == "binary"
    assert message.args == [1, 2] and message.kwargs == {}
    assert message.task_id == result.id
    assert message.eta is not None and message.expires is not None
    assert timedelta(seconds=55) < message.eta - before < timedelta(seconds=65)
    assert timedelta(seconds=595) < message.expires - before < timedelta(seconds=605)
    assert message.eta.tzinfo is UTC
    assert preview(message) == "tasks.add(1, 2)"


@pytest.mark.redis
def test_decode_chain(celery_app: Celery, raw: redis.Redis) -> None:
    add = celery_app.tasks["tasks.add"]
    (add.s(1, 2) | add.s(3) | add.s(4)).apply_async(queue="q3")
    message = decode_message(only(raw, "q3"))
    assert message.problem is None
    assert message.args == [1, 2]
    assert message.chain == ("tasks.add", "tasks.add")


@pytest.mark.redis
def test_pickle_with_globals_is_refused_and_repr_shown(
    celery_app: Celery, raw: redis.Redis
) -> None:
    when = datetime(2024, 1, 2, tzinfo=UTC)
    celery_app.send_task("tasks.add", args=(when,), serializer="pickle", queue="q4")
    message = decode_message(only(raw, "q4"))
    assert message.args is None and message.task == "tasks.add"
    assert message.problem is not None and "datetime" in message.problem
    assert preview(message).startswith("tasks.add (datetime.datetime(2024, 1, 2")


# ------------------------------------------------------------------ hostile messages


def test_two_element_body_is_flagged() -> None:
    message = decode_message(envelope(b'[[1], {"b": 2}]'))
    assert message.args == [1] and message.kwargs == {"b": 2}
    assert message.problem is not None and "2 items" in message.problem


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "not a JSON message"),
        (b"\xff\xfe\x00garbage", "not a JSON message"),
        (b'"just a string"', "not an object"),
        (b"[]", "not an object"),
        (b"", "not a JSON message"),
    ],
)
def test_garbage_elements(raw: bytes, words: str) -> None:
    message = decode_message(raw)
    assert isinstance(message, CeleryMessage)
    assert message.problem is not None and words in message.problem
    assert preview(message) == "?(?)"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"headers": {"task": "tasks.add"}}, "no task id"),
        ({"properties": {"body_encoding": "base64"}}, "no delivery_info"),
        ({"content-type": None}, "no content-type"),
        ({"content-type": "application/x-yaml"}, "not decoded"),
        ({"body": "!!!not base64"}, "not base64"),
        ({"body": ["a"]}, "not text"),
    ],
)
def test_malformed_envelopes(changes: dict[str, Any], words: str) -> None:
    message = decode_message(envelope(b"[[1], {}, {}]", **changes))
    assert message.problem is not None and words in message.problem, message.problem


def test_body_that_is_a_json_string() -> None:
    message = decode_message(envelope(b'"hello"'))
    assert message.args is None and message.problem is not None
    assert "str, not [args, kwargs, embed]" in message.problem


def test_plain_string_body_without_body_encoding() -> None:
    raw = json.loads(envelope(b""))
    raw["body"] = '[[4], {"b": 1}, null]'
    del raw["properties"]["body_encoding"]
    message = decode_message(json.dumps(raw).encode())
    assert message.problem is None and message.args == [4] and message.kwargs == {"b": 1}


class Boom:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def test_pickle_that_would_run_code_never_runs(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    body = pickle.dumps(((Boom(target),), {}, {}))
    message = decode_message(envelope(body, **{"content-type": "application/x-python-serialize"}))
    assert not target.exists()
    assert message.args is None and message.serializer == "application/x-python-serialize"
    assert message.problem is not None and "open, which is never loaded" in message.problem
    compressed = envelope(
        zlib.compress(body),
        **{
            "content-type": "application/x-python-serialize",
            "headers": {"task": "t", "id": "i", "compression": "application/x-gzip"},
        },
    )
    assert decode_message(compressed).args is None
    assert not target.exists()


def test_five_megabyte_body_is_bounded() -> None:
    big = b'[["' + b"x" * 5_000_000 + b'"], {}, {}]'
    raw = envelope(big)
    started = time.perf_counter()
    message = decode_message(raw)
    assert time.perf_counter() - started < 1.0
    assert message.task == "tasks.add" and message.task_id == "id-1"
    assert message.args is None and message.body_bytes > 5_000_000
    assert message.problem is not None and "over the cap" in message.problem
    started = time.perf_counter()
    unacked = decode_unacked(b"[" + raw + b', "", "celery"]')
    assert time.perf_counter() - started < 1.0
    assert unacked.message.task_id == "id-1" and unacked.routing_key == "celery"
    huge_garbage = decode_message(b"x" * 6_000_000)
    assert huge_garbage.problem is not None and "over the" in huge_garbage.problem


def test_zlib_bomb_is_capped() -> None:
    bomb = zlib.compress(b"[" * 50_000_000)
    message = decode_message(
        envelope(bomb, headers={"task": "t", "id": "i", "compression": "application/x-gzip"})
    )
    assert message.args is None and message.problem is not None
    assert "cap" in message.problem
    wrong = decode_message(
        envelope(b"[[1],{},{}]", headers={"task": "t", "id": "i", "compression": "zlib"})
    )
    assert wrong.problem is not None and "not" in wrong.problem


def test_protocol_1_message() -> None:
    body = {
        "task": "tasks.add",
        "id": "old-1",
        "args": [1, 2],
        "kwargs": {"principal_id": "p"},
        "retries": 1,
        "eta": "2030-01-01T00:00:00+00:00",
        "expires": None,
        "utc": True,
    }
    message = decode_message(envelope(json.dumps(body).encode(), headers={}))
    assert message.protocol == 1 and message.problem is None
    assert message.task == "tasks.add" and message.task_id == "old-1"
    assert message.args == [1, 2] and message.retries == 1 and message.principal == "p"
    assert message.eta == datetime(2030, 1, 1, tzinfo=UTC)


def test_non_utf8_and_odd_header_types() -> None:
    message = decode_message(
        envelope(
            b"[[], {}, {}]", headers={"task": 5, "id": "i", "eta": "yesterday", "retries": "x"}
        )
    )
    assert message.task is None and message.problem is not None
    for words in ("task is a int", "eta is not", "retries is not"):
        assert words in message.problem


def test_preview_is_capped() -> None:
    message = decode_message(envelope(json.dumps([["y" * 10_000], {}, {}]).encode()))
    assert len(preview(message)) <= PREVIEW_CHARS + 1


# ------------------------------------------------------------------ unacked


def test_unacked_entry() -> None:
    payload = json.loads(envelope(b"[[7], {}, {}]"))
    payload["headers"]["redelivered"] = True
    entry = decode_unacked(json.dumps([payload, "", "celery"]).encode())
    assert entry.problem is None and entry.exchange == "" and entry.routing_key == "celery"
    assert entry.message.args == [7] and entry.message.redelivered
    for garbage in (b"{}", b"[1, 2]", b"\xff", b"[1, 2, 3]"):
        bad = decode_unacked(garbage)
        assert bad.problem is not None or bad.message.problem is not None


# ------------------------------------------------------------------ result metas


@pytest.mark.redis
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_result_metas_from_a_real_backend(celery_app: Celery, raw: redis.Redis) -> None:
    request = SimpleNamespace(
        id="ghi",
        task="tasks.add",
        args=(1, 2),
        kwargs={"b": 3, "user_id": "u7"},
        hostname="w1@host",
        retries=2,
        delivery_info={"routing_key": "q9"},
        group=None,
        parent_id="p1",
        children=[],
        stamps=None,
        ignore_result=False,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # redis-py's setex
        celery_app.backend.store_result("ghi", 5, "SUCCESS", request=request)
        try:
            raise ValueError("boom")
        except ValueError as exc:
            celery_app.backend.mark_as_failure("def", exc, traceback="Traceback...\nboom")
        celery_app.backend.mark_as_started("jkl", pid=5, hostname="h")

    done = decode_result_meta(raw.get(KEYS.task_meta("ghi")))
    assert done.problem is None
    assert done.status == "SUCCESS" and done.result == "5" and done.task_id == "ghi"
    assert done.name == "tasks.add" and done.args == [1, 2]
    assert done.kwargs == {"b": 3, "user_id": "u7"} and done.principal == "u7"
    assert done.worker == "w1@host" and done.retries == 2 and done.queue == "q9"
    assert done.parent_id == "p1"
    assert done.date_done is not None and done.date_done.tzinfo is UTC
    assert abs(datetime.now(tz=UTC) - done.date_done) < timedelta(minutes=1)

    failed = decode_result_meta(raw.get(KEYS.task_meta("def")))
    assert failed.status == "FAILURE" and failed.error == "ValueError: boom"
    assert failed.traceback == "Traceback...\nboom" and failed.problem is None

    started = decode_result_meta(raw.get(KEYS.task_meta("jkl")))
    assert started.status == "STARTED" and started.date_done is None
    assert started.result is not None and '"pid": 5' in started.result


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"[1, 2]", "not a map"),
        (b'{"status": "WEIRD"}', "not one of Celery's states"),
        (b'{"status": "SUCCESS", "date_done": "nope"}', "date_done is not"),
        (b'{"status": "SUCCESS"}', "no date_done"),
        (b'{"status": 5}', "status is not text"),
        (b'{"status": "SUCCESS", "date_done": "2024-01-01T00:00:00", "args": 5}', "args"),
        (b"\x80\x04garbage", "pickle"),
        (pickle.dumps({"status": datetime(2024, 1, 1)}), "datetime"),
    ],
)
def test_garbage_metas(raw: bytes, words: str) -> None:
    meta = decode_result_meta(raw)
    assert meta.problem is not None and words in meta.problem, meta.problem


def test_meta_without_extended_fields() -> None:
    meta = decode_result_meta(
        b'{"status": "REVOKED", "result": {"exc_type": "TaskRevokedError", "exc_message": '
        b'["revoked"], "exc_module": "celery.exceptions"}, "traceback": null, "children": '
        b'[[["c1", null], null]], "date_done": "2024-05-01T10:00:00+02:00", "task_id": "x"}'
    )
    assert meta.problem is None and meta.status == "REVOKED"
    assert meta.args is None and meta.kwargs is None and meta.name is None
    assert meta.children == ("c1",)
    assert meta.date_done == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert meta.error == "TaskRevokedError: revoked"
