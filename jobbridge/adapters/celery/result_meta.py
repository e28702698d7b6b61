"""Celery's result metas (``celery-task-meta-<id>``), decoded from the bytes Redis holds.

Pure functions, no Redis (docs/celery.md §3). Everything read is hostile: each way a meta is
malformed becomes words in ``problem``, never an exception; a pickled meta is read only by
:mod:`jobbridge.adapters.payloads`' refusing unpickler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobbridge.adapters import payloads
from jobbridge.adapters.celery.messages import (
    MAX_ID_CHARS,
    MAX_LINKED,
    clean_text,
    read_datetime,
    read_int,
    read_text,
)
from jobbridge.adapters.fields import MAX_NAME_CHARS, cap, correlation_of, principal_of
from jobbridge.adapters.payloads import DETAIL_CHARS, PREVIEW_CHARS

#: Celery's states (``celery.states.ALL_STATES``); PENDING is never stored, RECEIVED is
#: event-only, so either in a meta is odd but legal
STATES = frozenset({"PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"})
READY_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultMeta:
    """A ``celery-task-meta-<id>`` value, decoded."""

    task_id: str | None = None
    #: as stored; ``problem`` says when it is not one of :data:`STATES`
    status: str | None = None
    #: the result as JSON text (SUCCESS: the return value; FAILURE/RETRY: the exception as
    #: Celery stores it; STARTED: pid and hostname), capped at ``DETAIL_CHARS``
    result: str | None = None
    #: "ExcType: message" of a stored exception
    error: str | None = None
    traceback: str | None = None
    children: tuple[str, ...] = ()
    date_done: datetime | None = None
    group_id: str | None = None
    parent_id: str | None = None
    #: ``result_extended`` fields: None when the meta does not have them
    name: str | None = None
    args: list[Any] | None = None
    kwargs: dict[Any, Any] | None = None
    worker: str | None = None
    retries: int | None = None
    queue: str | None = None
    principal: str | None = None
    correlation: str | None = None
    #: "json" or "pickle" (``result_serializer``)
    serializer: str | None = None
    problem: str | None = None


def _result_text(value: Any) -> str | None:
    if value is None:
        return None
    return payloads.json_detail(value, DETAIL_CHARS)[0]


def _error_of(status: Any, result: Any) -> str | None:
    """ "ExcType: message" of an exception Celery stored as ``{"exc_type", "exc_message"}``."""
    if status not in ("FAILURE", "RETRY", "REVOKED") or not isinstance(result, dict):
        return None
    exc_type = result.get("exc_type")
    if not isinstance(exc_type, str):
        return None
    message = result.get("exc_message")
    parts = message[:10] if isinstance(message, list | tuple) else [message]
    message = ", ".join(
        clean_text(m, PREVIEW_CHARS) if isinstance(m, str) else payloads.json_preview(m)
        for m in parts
        if m is not None
    )
    text = f"{exc_type[:MAX_NAME_CHARS]}: {message}" if message else exc_type[:MAX_NAME_CHARS]
    return cap(text, DETAIL_CHARS)


def _children(value: Any, problems: list[str]) -> tuple[str, ...]:
    """Ids of ``children``: each a result tuple ``[[id, parent], nested]``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append("children is not a list")
        return ()
    ids = []
    for child in value[:MAX_LINKED]:
        head = child[0] if isinstance(child, list) and child else None
        if isinstance(head, list) and head and isinstance(head[0], str):
            ids.append(head[0][:MAX_ID_CHARS])
    return tuple(ids)


def _read_meta(meta: Mapping[str, Any], serializer: str, p: list[str]) -> ResultMeta:
    status = meta.get("status")
    if not isinstance(status, str):
        p.append("no status" if status is None else "status is not text")
        status = None
    elif status not in STATES:
        p.append(f"status {status[:40]!r} is not one of Celery's states")
    date_done = read_datetime(meta.get("date_done"), "date_done", p)
    if status in READY_STATES and date_done is None:
        p.append("no date_done for a finished task")
    traceback = read_text(meta.get("traceback"), "traceback", p, DETAIL_CHARS)
    args, kwargs = meta.get("args"), meta.get("kwargs")
    if args is not None and not isinstance(args, list | tuple):
        p.append("args is not a list")
    if kwargs is not None and not isinstance(kwargs, dict):
        p.append("kwargs is not a dict")
    kwargs = kwargs if isinstance(kwargs, dict) else None
    return ResultMeta(
        task_id=read_text(meta.get("task_id"), "task_id", p),
        status=status[:MAX_ID_CHARS] if status else None,
        result=_result_text(meta.get("result")),
        error=_error_of(status, meta.get("result")),
        traceback=traceback,
        children=_children(meta.get("children"), p),
        date_done=date_done,
        group_id=read_text(meta.get("group_id"), "group_id", p),
        parent_id=read_text(meta.get("parent_id"), "parent_id", p),
        name=read_text(meta.get("name"), "name", p, MAX_NAME_CHARS),
        args=list(args) if isinstance(args, list | tuple) else None,
        kwargs=kwargs,
        worker=read_text(meta.get("worker"), "worker", p),
        retries=read_int(meta.get("retries"), "retries", p),
        queue=read_text(meta.get("queue"), "queue", p),
        principal=principal_of(kwargs),
        correlation=correlation_of(kwargs),
        serializer=serializer,
        problem="; ".join(dict.fromkeys(p))[:DETAIL_CHARS] or None,
    )


def decode_result_meta(raw: bytes) -> ResultMeta:
    """A ``celery-task-meta-<id>`` value (JSON, or a pickle read by the refusing unpickler
    when ``result_serializer`` is pickle). Never raises.

    ``args``/``kwargs``/``name``/``worker``/``retries``/``queue`` are set only when the meta
    has them (``result_extended``); ``problem`` names anything malformed.
    """
    try:
        value, serializer, problem = payloads.decode_value(raw)
        if problem:
            return ResultMeta(serializer=serializer, problem=f"the meta is {problem}")
        if not isinstance(value, dict):
            kind = type(value).__name__
            return ResultMeta(serializer=serializer, problem=f"the meta is a {kind}, not a map")
        return _read_meta(value, serializer, [])
    except Exception as exc:  # the last guard: a page must render whatever is stored
        return ResultMeta(problem=f"could not be decoded ({type(exc).__name__})")
