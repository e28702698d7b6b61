"""Celery's remote control, result metas and task messages, built without Celery (docs/celery.md
§1.7, §2, §3): channel names, the pidbox broadcasts a worker obeys, a REVOKED meta and a
protocol 2 message checked against §2.6/§2.7, each in kombu's envelope (:mod:`.envelope`).
Channels assume kombu's default ``fanout_prefix`` and ``fanout_patterns`` transport options.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jobbridge import safejson
from jobbridge.adapters.celery.envelope import (
    BODY_ENCODING,
    CONTENT_JSON,
    ENCODING_UTF8,
    MAX_REPR_CHARS,
    check_plain,
    json_envelope,
    short_repr,
)
from jobbridge.adapters.celery.keys import DEFAULT_SEP, MAX_PRIORITY, MIN_PRIORITY, CeleryKeys
from jobbridge.adapters.celery.messages import decode_message
from jobbridge.adapters.fields import glob_escape

#: the fanout exchange every worker's pidbox consumes (``control_exchange`` "celery")
PIDBOX_EXCHANGE = "celery.pidbox"
#: the direct exchange replies go through; a client's reply queue is ``<oid>.`` + this
REPLY_EXCHANGE = "reply.celery.pidbox"
#: the fanout exchange of events
EVENT_EXCHANGE = "celeryev"


#: Celery's protocol 2 headers, in the order it writes them (§2.2)
TASK_HEADERS = (
    "lang",
    "task",
    "id",
    "shadow",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
    "replaced_task_nesting",
    "stamped_headers",
    "stamps",
)
#: the embed of a plain task: no callbacks, errbacks, chain or chord
EMPTY_EMBED: Mapping[str, None] = {
    "callbacks": None,
    "errbacks": None,
    "chain": None,
    "chord": None,
}
#: the persistent delivery mode Celery gives task messages and broadcasts
DELIVERY_PERSISTENT = 2

#: how Celery stores a revoke: its exception, by module and qualified name
REVOKED_EXC_TYPE = "TaskRevokedError"
REVOKED_EXC_MODULE = "celery.exceptions"

#: a Lamport clock of this process, as a kombu Mailbox keeps one (workers only adjust theirs)
_clock = itertools.count(1)


# ------------------------------------------------------------------------------------------
# Channels and keys


def _fanout_prefix(global_keyprefix: str, db: int) -> str:
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise ValueError(f"db must be a database number, got {db!r}")
    return f"{global_keyprefix}/{db}."


def pidbox_channel(global_keyprefix: str, db: int) -> str:
    """The channel a control broadcast is PUBLISHed on: ``P/<db>.celery.pidbox``.

    kombu publishes a fanout message to ``/<db>.<exchange>`` (plus ``/<routing key>`` when
    there is one: a broadcast has none), and its prefixed client puts ``global_keyprefix``
    in front of the channel of a PUBLISH.
    """
    return _fanout_prefix(global_keyprefix, db) + PIDBOX_EXCHANGE


def events_pattern(global_keyprefix: str, db: int, group: str = "*") -> str:
    """The PSUBSCRIBE pattern of Celery's event channels: every event for ``"*"``
    (``/0.celeryev/*``), else one group's (``worker`` -> ``/0.celeryev/worker.*``, the
    pattern a worker's own event receiver subscribes to). Glob characters in the prefix
    and the group match only themselves."""
    head = glob_escape(f"{_fanout_prefix(global_keyprefix, db)}{EVENT_EXCHANGE}/")
    return head + ("*" if group == "*" else glob_escape(group) + ".*")


def reply_to(oid: str) -> dict[str, str]:
    """The ``reply_to`` of a broadcast whose replies go to the client ``oid``."""
    return {"exchange": REPLY_EXCHANGE, "routing_key": oid}


def reply_list(global_keyprefix: str, oid: str) -> str:
    """The list workers LPUSH their replies to client ``oid`` onto:
    ``P<oid>.reply.celery.pidbox`` (the reply queue, step 0 of its priorities)."""
    return f"{global_keyprefix}{oid}.{REPLY_EXCHANGE}"


def reply_binding(global_keyprefix: str, oid: str, sep: str = DEFAULT_SEP) -> tuple[str, str]:
    """The binding set of the reply exchange and the member that routes replies to ``oid``.

    A worker publishes its reply to the direct exchange ``reply.celery.pidbox`` with the
    routing key ``oid``; kombu finds the queue in this set (``SMEMBERS``) and drops the reply
    when no member has that routing key. A client adds the member before it broadcasts and
    removes it afterwards, as Celery's does.
    """
    keys = CeleryKeys(global_keyprefix=global_keyprefix, sep=sep)
    member = sep.join((oid, "", f"{oid}.{REPLY_EXCHANGE}"))
    return keys.binding(REPLY_EXCHANGE), member


# ------------------------------------------------------------------------------------------
# Remote control


def control_envelope(
    method: str,
    arguments: Mapping[str, Any],
    *,
    ticket: str,
    reply_to: Mapping[str, str] | None = None,
    destination: Sequence[str] | None = None,
    now: float | None = None,
    timeout: float = 1.0,
    clock: int | None = None,
) -> bytes:
    """The message a pidbox broadcast PUBLISHes on :func:`pidbox_channel`, as Celery's
    ``app.control.broadcast`` writes it (kombu's ``Mailbox._publish``).

    The body is ``{"method", "arguments", "destination", "pattern": null, "matcher": null,
    "ticket", "reply_to"}``; the headers carry a Lamport ``clock`` and ``expires`` (``now +
    timeout``, epoch seconds; only a reply collector reads it); the properties those of a
    message kombu publishes to the ``celery.pidbox`` fanout exchange. Celery leaves
    ``ticket`` and ``reply_to`` out when it expects no reply; a worker accepts a ticket
    either way and replies only when there is a ``reply_to``.

    Args:
        method: the control command (``revoke``, ``stats``, ``active_queues``...).
        arguments: its keyword arguments, plain JSON values.
        ticket: correlates replies (a worker copies it into its reply's headers).
        reply_to: :func:`reply_to` of the client's oid, to get replies; None for none.
        destination: the node names (``name@host``) that should obey; None for all.
        now: the time ``expires`` counts from (default: now).
        timeout: seconds replies are awaited (``expires``); 0 writes ``expires`` 0.
        clock: the Lamport clock value; default, this process's next one.

    Raises:
        ValueError: an empty method, a destination that is not a list of names, or
            arguments that are not plain JSON values.
    """
    if not isinstance(method, str) or not method:
        raise ValueError("the control method must be non-empty text")
    if not isinstance(ticket, str) or not ticket:
        raise ValueError("the ticket must be non-empty text")
    if destination is not None and (
        isinstance(destination, str) or not all(isinstance(d, str) for d in destination)
    ):
        raise ValueError("destination must be a list of node names")
    check_plain(dict(arguments), "the arguments")
    body: dict[str, Any] = {
        "method": method,
        "arguments": dict(arguments),
        "destination": list(destination) if destination is not None else None,
        "pattern": None,
        "matcher": None,
        "ticket": ticket,
    }
    if reply_to is not None:
        body["reply_to"] = {
            "exchange": str(reply_to["exchange"]),
            "routing_key": str(reply_to["routing_key"]),
        }
    sent = time.time() if now is None else now
    headers = {
        "clock": next(_clock) if clock is None else clock,
        "expires": sent + timeout if timeout else 0,
    }
    properties = {
        "delivery_mode": DELIVERY_PERSISTENT,
        "delivery_info": {"exchange": PIDBOX_EXCHANGE, "routing_key": ""},
        "priority": 0,
        "body_encoding": BODY_ENCODING,
        "delivery_tag": str(uuid.uuid4()),
    }
    return json_envelope(body, headers, properties)


def revoke_envelope(
    task_id: str,
    *,
    terminate: bool = False,
    signal: str = "SIGTERM",
    ticket: str,
    reply_to: Mapping[str, str] | None = None,
    destination: Sequence[str] | None = None,
) -> bytes:
    """A ``revoke`` broadcast (Celery's ``app.control.revoke``): every connected worker that
    gets it remembers the id, discards the task when it meets it (one held for an ``eta``, a
    prefetched one, or a later delivery) and stores a REVOKED meta; with ``terminate``, a
    worker running it signals the pool process (prefork) running it.

    Only workers connected when it is published get it (pub/sub keeps nothing), and they
    remember it in memory only.
    """
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("the task id must be non-empty text")
    arguments = {"task_id": task_id, "terminate": bool(terminate), "signal": signal}
    return control_envelope(
        "revoke", arguments, ticket=ticket, reply_to=reply_to, destination=destination
    )


# ------------------------------------------------------------------------------------------
# Result metas


def revoked_meta(
    task_id: str,
    *,
    date_done: datetime,
    name: str | None,
    args: list[Any] | None,
    kwargs: dict[str, Any] | None,
    queue: str | None,
    parent_id: str | None,
    root_id: str | None,
    extended: bool,
    group_id: str | None = None,
    worker: str | None = None,
    retries: int = 0,
    reason: str = "revoked",
) -> bytes:
    """The JSON a Celery Redis result backend stores for a REVOKED task (§3.2), keys in
    Celery's order: ``status``, ``result`` (the ``TaskRevokedError`` as Celery stores an
    exception: ``exc_type``, ``exc_message`` as a list, ``exc_module``), ``traceback``,
    ``children``, ``date_done``, ``group_id``/``parent_id`` when set, the
    ``result_extended`` fields when ``extended``, then ``task_id``.

    A worker that revokes a task it knows stores ``children`` ``[]`` and, under
    ``result_extended``, ``name``, ``args``, ``kwargs``, ``worker``, ``retries`` and
    ``queue``; one that revokes an id it never met stores ``children`` null and none of
    them. This follows the first when ``extended`` and the second otherwise. Celery keeps no
    ``root_id`` in a meta: it is accepted for symmetry with the task message and not written.

    Written with ``SET <meta key> <meta> EX <result_expires>`` and ``PUBLISH <meta key>
    <meta>``, it ends ``AsyncResult.get`` with ``TaskRevokedError`` and reads as REVOKED.

    Raises:
        ValueError: a naive ``date_done``, or args/kwargs that are not plain JSON values.
    """
    del root_id  # not part of Celery's meta
    if date_done.tzinfo is None or date_done.utcoffset() is None:
        raise ValueError("date_done must be an aware datetime")
    meta: dict[str, Any] = {
        "status": "REVOKED",
        "result": {
            "exc_type": REVOKED_EXC_TYPE,
            "exc_message": [reason],
            "exc_module": REVOKED_EXC_MODULE,
        },
        "traceback": None,
        "children": [] if extended else None,
        "date_done": date_done.astimezone(UTC).isoformat(),
    }
    if group_id:
        meta["group_id"] = group_id
    if parent_id:
        meta["parent_id"] = parent_id
    if extended:
        check_plain(args, "args")
        check_plain(kwargs, "kwargs")
        meta.update(
            name=name,
            args=list(args) if args is not None else None,
            kwargs=dict(kwargs) if kwargs is not None else None,
            worker=worker,
            retries=retries,
            queue=queue,
        )
    meta["task_id"] = task_id
    return json.dumps(meta).encode("utf-8")


# ------------------------------------------------------------------------------------------
# Task messages


def build_task_message(
    *,
    task: str,
    task_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str,
    priority: int | None,
    parent_id: str | None,
    root_id: str | None,
    origin: str,
    group: str | None = None,
) -> bytes:
    """A complete protocol 2 task message for the queue's list (§2.1-§2.3, §2.7): what
    Celery's ``send_task`` pushes, without ``eta``, ``expires``, time limits or an embedded
    workflow. LPUSH it onto the list of its priority step (``CeleryKeys.priority_list``).

    Args:
        task: the registered task name.
        task_id: the new task's id (a fresh uuid4 for a retry).
        args, kwargs: the arguments, plain JSON values (never rebuilt from a repr).
        queue: the queue's name (``delivery_info.routing_key``).
        priority: 0..9, or None for kombu's default 0.
        parent_id, root_id: the task this one replaces and its workflow's first task.
        origin: the sender's name (``jobbridge@<host>``).
        group: the group the task belongs to, if any.

    Raises:
        ValueError: empty names, a priority out of 0..9, or arguments that are not plain
            JSON values.
    """
    for what, value in (("task", task), ("task_id", task_id), ("queue", queue)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{what} must be non-empty text")
    if not isinstance(args, list | tuple):
        raise ValueError("args must be a list")
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs must be a dict")
    check_plain(list(args), "args")
    check_plain(kwargs, "kwargs")
    if priority is not None and (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        raise ValueError(f"priority must be in {MIN_PRIORITY}..{MAX_PRIORITY}, got {priority!r}")
    headers: dict[str, Any] = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": group,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": root_id,
        "parent_id": parent_id,
        "argsrepr": short_repr(tuple(args)),
        "kwargsrepr": short_repr(kwargs),
        "origin": origin,
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    properties = {
        "correlation_id": task_id,
        "reply_to": "",
        "delivery_mode": DELIVERY_PERSISTENT,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": MIN_PRIORITY if priority is None else priority,
        "body_encoding": BODY_ENCODING,
        "delivery_tag": str(uuid.uuid4()),
    }
    return json_envelope([list(args), kwargs, dict(EMPTY_EMBED)], headers, properties)


def validate_task_message(raw: bytes, *, queue: str) -> str | None:
    """None when a message jobbridge is about to push onto ``queue`` meets every rule of
    docs/celery.md §2.6 and §2.7, else what is wrong, in words (each rule broken, once).

    A message that breaks §2.6 kills a worker or vanishes; §2.7 adds jobbridge's own rules
    (JSON only, Celery's whole header set, a fresh attempt, a priority in 0..9).
    """
    problems: list[str] = []
    try:
        envelope = safejson.loads(raw)
    except safejson.JSONError as exc:
        return f"the message is not JSON ({exc})"
    if not isinstance(envelope, dict):
        return f"the message is a JSON {type(envelope).__name__}, not an object"
    decoded = decode_message(raw)
    if decoded.problem:
        problems.append(decoded.problem)
    _check_content(envelope, problems)
    headers = envelope.get("headers")
    if isinstance(headers, dict):
        _check_headers(headers, problems)
    else:
        problems.append("no headers")
        headers = {}
    properties = envelope.get("properties")
    if isinstance(properties, dict):
        _check_properties(properties, headers.get("id"), queue, problems)
    else:
        problems.append("no properties")
    _check_body(envelope, problems)
    return "; ".join(dict.fromkeys(problems)) or None


def _check_content(envelope: Mapping[str, Any], problems: list[str]) -> None:
    if envelope.get("content-type") != CONTENT_JSON:
        problems.append(f"the content-type is not {CONTENT_JSON}")
    if envelope.get("content-encoding") != ENCODING_UTF8:
        problems.append(f"the content-encoding is not {ENCODING_UTF8}")


def _nonempty_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _check_headers(headers: Mapping[str, Any], problems: list[str]) -> None:
    missing = [name for name in TASK_HEADERS if name not in headers]
    if missing:
        problems.append("headers lack " + ", ".join(missing))
    for name in ("task", "id", "origin"):
        if name in headers and not _nonempty_text(headers[name]):
            problems.append(f"headers.{name} is not non-empty text")
    if "lang" in headers and headers["lang"] != "py":
        problems.append('headers.lang is not "py"')
    retries = headers.get("retries")
    if "retries" in headers and (isinstance(retries, bool) or retries != 0):
        problems.append("headers.retries is not 0")
    if "timelimit" in headers and headers["timelimit"] != [None, None]:
        problems.append("headers.timelimit is not [null, null]")
    if "stamps" in headers and headers["stamps"] != {}:
        problems.append("headers.stamps is not empty")
    for name in ("argsrepr", "kwargsrepr"):
        value = headers.get(name)
        if name in headers and (not isinstance(value, str) or len(value) > MAX_REPR_CHARS):
            problems.append(f"headers.{name} is not text of at most {MAX_REPR_CHARS} characters")
    for name in ("root_id", "parent_id", "group", "shadow", "eta", "expires"):
        if headers.get(name) is not None and not isinstance(headers[name], str):
            problems.append(f"headers.{name} is neither text nor null")
    if "compression" in headers:
        problems.append("the body is compressed")


def _check_properties(
    properties: Mapping[str, Any], task_id: Any, queue: str, problems: list[str]
) -> None:
    if properties.get("body_encoding") != BODY_ENCODING:
        problems.append(f"properties.body_encoding is not {BODY_ENCODING}")
    if not _nonempty_text(properties.get("delivery_tag")):
        problems.append("no delivery_tag (a worker loses such a message)")
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not info:
        problems.append("no delivery_info (a worker loses such a message)")
    else:
        if info.get("exchange") != "":
            problems.append('delivery_info.exchange is not "" (the anonymous exchange)')
        if info.get("routing_key") != queue:
            problems.append(f"delivery_info.routing_key is not the queue {queue[:200]!r}")
    if not _nonempty_text(task_id) or properties.get("correlation_id") != task_id:
        problems.append("properties.correlation_id is not the task id")
    mode = properties.get("delivery_mode")
    if isinstance(mode, bool) or mode != DELIVERY_PERSISTENT:
        problems.append(f"properties.delivery_mode is not {DELIVERY_PERSISTENT}")
    priority = properties.get("priority")
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        problems.append(f"properties.priority is not an integer in {MIN_PRIORITY}..{MAX_PRIORITY}")


def _check_body(envelope: Mapping[str, Any], problems: list[str]) -> None:
    """The body decodes to exactly ``[list, dict, dict or null]``."""
    body = envelope.get("body")
    if not isinstance(body, str):
        problems.append("the body is not base64 text")
        return
    try:
        value = safejson.loads(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        problems.append("the body is not base64 of JSON")
        return
    if not isinstance(value, list) or len(value) != 3:
        problems.append("the body is not [args, kwargs, embed] (a worker fails on it and exits)")
        return
    args, kwargs, embed = value
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        problems.append("the body's args is not a list or its kwargs not a dict")
    if embed is not None and not isinstance(embed, dict):
        problems.append("the body's embed is neither a dict nor null")
