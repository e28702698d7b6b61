"""Celery's task messages, decoded from the bytes Redis holds (result metas: :mod:`.result_meta`).
Pure functions, no Redis, no Celery (docs/celery.md §2, §4.1): each way a message is malformed
becomes words in ``problem``, never an exception; arguments go through
:mod:`jobbridge.adapters.payloads`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobbridge import safejson
from jobbridge.adapters import payloads, unpickle
from jobbridge.adapters.fields import MAX_NAME_CHARS, cap, correlation_of, principal_of
from jobbridge.adapters.payloads import DETAIL_CHARS, PREVIEW_CHARS

#: bytes of a broker element (or unacked value) decoded as a whole; a bigger one has its
#: base64 body cut out unread first, so that its headers can still be shown
MAX_MESSAGE_BYTES = 2 * payloads.MAX_INPUT_BYTES
#: base64 characters of a body decoded (they decode to ``payloads.MAX_INPUT_BYTES``)
MAX_BODY_CHARS = (payloads.MAX_INPUT_BYTES + 2) // 3 * 4
#: where kombu writes the body key: first in the envelope (or first in an unacked value)
_BODY_KEY_WITHIN = 64
#: characters of an id, origin or other header kept
MAX_ID_CHARS = 200
#: characters of ``argsrepr`` / ``kwargsrepr`` kept (Celery cuts them at 1024)
MAX_REPR_CHARS = 2048
#: task names kept from an embedded chain or callback list
MAX_LINKED = 50
#: longest text read as a timestamp
_MAX_TIMESTAMP_CHARS = 64

CONTENT_JSON = "application/json"
CONTENT_PICKLE = "application/x-python-serialize"
#: kombu's ``zlib``/``gzip`` compression: a zlib stream (not gzip's format) under this name
COMPRESSION_ZLIB = "application/x-gzip"
_ZLIB_NAMES = frozenset({COMPRESSION_ZLIB, "zlib", "gzip"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CeleryMessage:
    """One task message, decoded without running anything; None where unknown."""

    #: the registered task name (``headers.task``), capped
    task: str | None = None
    #: the task id (``headers.id``)
    task_id: str | None = None
    #: 2 (headers), 1 (task and id in the body), None when not told
    protocol: int | None = None
    #: plain values only; None when not decoded (see ``problem``)
    args: list[Any] | None = None
    kwargs: dict[Any, Any] | None = None
    #: "json", "pickle", or the content type that was not decoded
    serializer: str | None = None
    eta: datetime | None = None
    expires: datetime | None = None
    retries: int | None = None
    #: ``properties.priority`` as stored (kombu clamps it to 0..9 to pick a list)
    priority: int | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    origin: str | None = None
    #: Celery's ``saferepr`` of the arguments: for display when they cannot be decoded,
    #: never to rebuild them
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    delivery_tag: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    #: kombu restored it from ``unacked`` (a worker took it and did not acknowledge it)
    redelivered: bool = False
    content_type: str | None = None
    content_encoding: str | None = None
    #: ``headers.compression`` (kombu's zlib is "application/x-gzip")
    compression: str | None = None
    #: task names of the embedded chain (next first), callbacks and errbacks
    chain: tuple[str, ...] = ()
    callbacks: tuple[str, ...] = ()
    errbacks: tuple[str, ...] = ()
    #: identity values found in ``kwargs``
    principal: str | None = None
    correlation: str | None = None
    #: bytes of the body as stored (base64 text included)
    body_bytes: int = 0
    #: what is malformed or could not be decoded, in words; None when nothing is
    problem: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnackedEntry:
    """A value of the ``unacked`` hash: the message a worker holds, and where it came from."""

    message: CeleryMessage
    exchange: str | None = None
    routing_key: str | None = None
    problem: str | None = None


# ------------------------------------------------------------------------------------------
# Small readers: each returns a value or None, and says what was wrong in ``problems``


def read_text(value: Any, name: str, problems: list[str], limit: int = MAX_ID_CHARS) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return clean_text(value, limit)
    problems.append(f"{name} is a {type(value).__name__}, not text")
    return None


def clean_text(value: str, limit: int) -> str:
    """Text capped, without the lone surrogates (from a pickle) no page can print."""
    return (cap(value, limit) or "").encode("utf-8", "replace").decode("utf-8")


#: longest priority text read (kombu would take more; nobody writes it)
_MAX_PRIORITY_CHARS = 24


def read_int(value: Any, name: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63:
        return value
    problems.append(f"{name} is not an integer")
    return None


def _priority(value: Any, problems: list[str]) -> int | None:
    """``properties.priority`` as kombu's virtual transport reads it: ``int()`` of it (so
    ``"9"`` and ``9.0`` are 9), the default where ``int()`` refuses it. Only a value kombu
    cannot read (or would crash on: ``int(inf)`` raises what kombu does not catch) is flagged.
    """
    if value is None:
        return None
    if isinstance(value, str | int | float) and not (
        isinstance(value, str) and len(value) > _MAX_PRIORITY_CHARS
    ):
        try:
            return int(value)
        except (ValueError, OverflowError):
            pass
    problems.append("priority is not a number kombu reads (it takes the default)")
    return None


def parse_datetime(value: Any) -> tuple[datetime | None, str | None]:
    """An ISO 8601 time as Celery writes ``eta``/``expires``/``date_done``: (aware UTC
    datetime, problem). A time without a zone is read as UTC, Celery's default."""
    if value is None:
        return None, None
    if not isinstance(value, str) or len(value) > _MAX_TIMESTAMP_CHARS:
        return None, "is not an ISO 8601 time"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None, "is not an ISO 8601 time"
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC), "has no time zone (read as UTC)"
    try:
        return parsed.astimezone(UTC), None
    except OverflowError:
        return None, "is out of range"


def read_datetime(value: Any, name: str, problems: list[str]) -> datetime | None:
    parsed, problem = parse_datetime(value)
    if problem:
        problems.append(f"{name} {problem}")
    return parsed


def _linked(value: Any) -> tuple[str, ...]:
    """Task names of embedded signatures (dicts with a ``task`` key)."""
    if not isinstance(value, list):
        return ()
    names = [
        clean_text(item["task"], MAX_NAME_CHARS)
        for item in value[:MAX_LINKED]
        if isinstance(item, dict) and isinstance(item.get("task"), str)
    ]
    return tuple(names)


def _is_zlib(data: bytes) -> bool:
    """Whether bytes start with a zlib header (deflate, checksum right)."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


# ------------------------------------------------------------------------------------------
# Envelope


def _outside_body(raw: bytes) -> bytes | None:
    """For an element over :data:`MAX_MESSAGE_BYTES`: the envelope with its body cut out
    unread, found by searching for the body kombu writes first. Base64 holds no quote or
    backslash, so the body ends at the next quote. None when it is not shaped so."""
    start = raw.find(b'"body": "', 0, _BODY_KEY_WITHIN)
    if start < 0:
        return None
    start += len(b'"body": "')
    end = raw.find(b'"', start)
    if end < 0 or len(raw) - (end - start) > MAX_MESSAGE_BYTES:
        return None
    return raw[:start] + raw[end:]


def _load_envelope(raw: bytes, problems: list[str]) -> tuple[Any, int | None]:
    """The decoded JSON of a broker element or unacked value, and the size of a body that
    was cut out unread (None when the whole was decoded)."""
    cut_body: int | None = None
    data = raw
    if len(raw) > MAX_MESSAGE_BYTES:
        outside = _outside_body(raw)
        if outside is None:
            problems.append(
                f"{len(raw):,} bytes, over the {MAX_MESSAGE_BYTES:,}-byte cap: not decoded"
            )
            return None, None
        data = outside
        cut_body = len(raw) - len(data)
    try:
        return safejson.loads(data), cut_body
    except safejson.JSONError as exc:
        problems.append(f"not a JSON message ({exc})")
        return None, None


def _body_bytes(envelope: Mapping[str, Any], properties: Mapping[str, Any]) -> bytes | str:
    """The body as stored: base64-decoded when ``body_encoding`` says so.

    Raises:
        ValueError: the body is not text, or not base64 when it should be; the message reads
            after "the body".
    """
    body = envelope.get("body")
    if not isinstance(body, str):
        raise ValueError(f"is a {type(body).__name__}, not text")
    encoding = properties.get("body_encoding")
    if encoding is None:
        return body  # a plain string body: workers take it as it is
    if encoding != "base64":
        raise ValueError(f"has body_encoding {str(encoding)[:40]!r}, which is not read")
    if len(body) > MAX_BODY_CHARS:
        raise ValueError(f"is {len(body):,} characters, over the cap: not decoded")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None


def _inflated(data: bytes, compression: str) -> bytes:
    """Raises:
    ValueError: not decompressed; the message reads after "the body"."""
    if compression not in _ZLIB_NAMES:
        raise ValueError(f"is compressed as {compression[:60]!r}, which is not inflated")
    if not _is_zlib(data):
        raise ValueError("should be zlib-compressed but is not")
    inflated, problem = payloads.inflate(data)
    if problem:
        raise ValueError(problem)
    return inflated


def _deserialize(data: bytes | str, content_type: Any) -> tuple[Any, str]:
    """The body's value and the serializer that read it.

    Raises:
        ValueError: not decoded; the message reads after "the body".
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if content_type == CONTENT_JSON:
        value, serializer, problem = payloads.decode_value(raw)
        if problem:
            raise ValueError(f"is not JSON: {problem}")
        if serializer != "json":
            raise ValueError("is not JSON (it is a pickle), as its content type says")
        return value, "json"
    if content_type == CONTENT_PICKLE:
        try:
            return unpickle.restricted_loads(raw), "pickle"
        except ValueError as exc:  # UnsafePickle is one: nothing of it ran
            raise ValueError(f"is a pickle that was not loaded: it {exc}") from None
    if content_type is None:
        raise ValueError("has no content-type (a worker crashes on such a message)")
    raise ValueError(f"has content type {str(content_type)[:60]!r}, which is not decoded")


# ------------------------------------------------------------------------------------------
# Messages


@dataclass(slots=True)
class _Fields:
    """Fields collected while one message is decoded."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _read_headers(headers: Mapping[str, Any], out: _Fields) -> None:
    p = out.problems
    v = out.values
    v["task"] = read_text(headers.get("task"), "task", p, MAX_NAME_CHARS)
    task_id = headers.get("id")
    if isinstance(task_id, str) and len(task_id) > MAX_ID_CHARS:
        # A cut id names no task: the row goes by its message's digest, which every route
        # can carry and cancel acts on.
        p.append(
            f"the task id is {len(task_id):,} characters, over {MAX_ID_CHARS}: shown by "
            "its message's digest"
        )
        task_id = None
    v["task_id"] = read_text(task_id, "id", p)
    v["eta"] = read_datetime(headers.get("eta"), "eta", p)
    v["expires"] = read_datetime(headers.get("expires"), "expires", p)
    v["retries"] = read_int(headers.get("retries"), "retries", p)
    v["root_id"] = read_text(headers.get("root_id"), "root_id", p)
    v["parent_id"] = read_text(headers.get("parent_id"), "parent_id", p)
    v["group"] = read_text(headers.get("group"), "group", p)
    v["origin"] = read_text(headers.get("origin"), "origin", p)
    v["argsrepr"] = read_text(headers.get("argsrepr"), "argsrepr", p, MAX_REPR_CHARS)
    v["kwargsrepr"] = read_text(headers.get("kwargsrepr"), "kwargsrepr", p, MAX_REPR_CHARS)
    v["compression"] = read_text(headers.get("compression"), "compression", p)
    if headers.get("redelivered") is True:
        v["redelivered"] = True


def _read_properties(properties: Mapping[str, Any], out: _Fields) -> None:
    p = out.problems
    v = out.values
    v["delivery_tag"] = read_text(properties.get("delivery_tag"), "delivery_tag", p)
    v["priority"] = _priority(properties.get("priority"), p)
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not info:
        p.append("no delivery_info (a worker loses such a message)")
        return
    v["exchange"] = read_text(info.get("exchange"), "exchange", p)
    v["routing_key"] = read_text(info.get("routing_key"), "routing_key", p)
    if info.get("redelivered") is True:
        v["redelivered"] = True


def _read_v2_body(value: Any, out: _Fields) -> None:
    """``[args, kwargs, embed]``; a body of another shape makes workers fail."""
    p = out.problems
    v = out.values
    if not isinstance(value, list | tuple):
        p.append(f"the body is a {type(value).__name__}, not [args, kwargs, embed]")
        return
    if len(value) != 3:
        p.append(
            f"the body holds {len(value)} items, not [args, kwargs, embed] "
            "(a worker fails on it and exits)"
        )
    args = value[0] if value else None
    kwargs = value[1] if len(value) > 1 else None
    v["args"] = list(args) if isinstance(args, list | tuple) else None
    v["kwargs"] = kwargs if isinstance(kwargs, dict) else None
    if v["args"] is None or v["kwargs"] is None:
        p.append("the body's args is not a list or its kwargs not a dict")
    embed = value[2] if len(value) > 2 else None
    if isinstance(embed, dict):
        v["chain"] = tuple(reversed(_linked(embed.get("chain"))))
        v["callbacks"] = _linked(embed.get("callbacks"))
        v["errbacks"] = _linked(embed.get("errbacks"))
    elif embed is not None:
        p.append("the body's embed is not a dict")


def _read_v1_body(body: Mapping[str, Any], out: _Fields) -> None:
    """Protocol 1: the body dict holds what protocol 2 keeps in headers."""
    v = out.values
    p = out.problems
    v["protocol"] = 1
    _read_headers(body, out)
    if isinstance(body.get("taskset"), str):
        v["group"] = read_text(body["taskset"], "taskset", p)
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    v["args"] = list(args) if isinstance(args, list | tuple) else None
    v["kwargs"] = kwargs if isinstance(kwargs, dict) else None
    if v["args"] is None or v["kwargs"] is None:
        p.append("the body's args is not a list or its kwargs not a dict")
    v["callbacks"] = _linked(body.get("callbacks"))
    v["errbacks"] = _linked(body.get("errbacks"))


def _read_body(envelope: Mapping[str, Any], properties: Mapping[str, Any], out: _Fields) -> Any:
    """The body's decoded value, or None with a problem."""
    v = out.values
    try:
        data = _body_bytes(envelope, properties)
        compression = v.get("compression")
        if compression is not None:
            data = _inflated(data.encode() if isinstance(data, str) else data, compression)
        value, v["serializer"] = _deserialize(data, envelope.get("content-type"))
    except ValueError as exc:
        out.problems.append(f"the body {exc}")
        content_type = envelope.get("content-type")
        v["serializer"] = content_type if isinstance(content_type, str) else None
        return None
    return value


def _read_envelope(envelope: Any, out: _Fields, cut_body: int | None) -> None:
    p = out.problems
    v = out.values
    if not isinstance(envelope, dict):
        p.append(f"the message is a JSON {type(envelope).__name__}, not an object")
        return
    headers = envelope.get("headers")
    headers = headers if isinstance(headers, dict) else {}
    properties = envelope.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    if not properties:
        p.append("no properties")
    v["content_type"] = read_text(envelope.get("content-type"), "content-type", p)
    v["content_encoding"] = read_text(envelope.get("content-encoding"), "content-encoding", p)
    body = envelope.get("body")
    v["body_bytes"] = (
        cut_body if cut_body is not None else len(body) if isinstance(body, str) else 0
    )
    _read_headers(headers, out)
    _read_properties(properties, out)
    if "task" in headers:
        v["protocol"] = 2
    if cut_body is not None:
        p.append(f"the body is {cut_body:,} bytes, over the cap: arguments not decoded")
        v["serializer"] = v["content_type"]
        return
    value = _read_body(envelope, properties, out)
    if v.get("protocol") == 2 and value is not None:
        _read_v2_body(value, out)
    elif isinstance(value, dict) and "task" in value:
        _read_v1_body(value, out)
    elif value is not None:
        p.append("no task header")
        _read_v2_body(value, out)
    if v.get("protocol") is not None and v.get("task_id") is None:
        p.append("no task id (workers keep failing on it and reconnecting)")
    if v.get("protocol") == 2 and not v.get("delivery_tag"):
        p.append("no delivery_tag (a worker loses such a message)")


def _message(out: _Fields) -> CeleryMessage:
    kwargs = out.values.get("kwargs")
    problems = list(dict.fromkeys(out.problems))  # once each, in order
    return CeleryMessage(
        **out.values,
        principal=principal_of(kwargs),
        correlation=correlation_of(kwargs),
        problem="; ".join(problems)[:DETAIL_CHARS] or None,
    )


def _decode_parsed(envelope: Any, cut_body: int | None, out: _Fields) -> CeleryMessage:
    try:
        _read_envelope(envelope, out, cut_body)
        return _message(out)
    except Exception as exc:  # the last guard: a page must render whatever is stored
        return CeleryMessage(problem=f"could not be decoded ({type(exc).__name__})")


def decode_message(raw: bytes) -> CeleryMessage:
    """One element of a Celery queue list (kombu's JSON envelope), decoded. Never raises.

    Args:
        raw: the element as stored.

    Returns:
        The message; ``problem`` names everything malformed (a body a worker would crash on,
        a missing id or delivery tag, an unsafe pickle, a body over the cap…).
    """
    out = _Fields()
    try:
        envelope, cut_body = _load_envelope(raw, out.problems)
    except Exception as exc:  # the last guard
        return CeleryMessage(problem=f"could not be decoded ({type(exc).__name__})")
    if envelope is None:
        return _message(out)
    return _decode_parsed(envelope, cut_body, out)


def decode_unacked(raw: bytes) -> UnackedEntry:
    """A value of the ``unacked`` hash (JSON ``[message, exchange, routing_key]``, the message
    an object, not text). Never raises."""
    problems: list[str] = []
    try:
        value, cut_body = _load_envelope(raw, problems)
    except Exception as exc:  # the last guard
        value, cut_body = None, None
        problems.append(f"could not be decoded ({type(exc).__name__})")
    if not isinstance(value, list) or len(value) != 3:
        if value is not None:
            problems.append("not a [message, exchange, routing_key] list")
        problem = "; ".join(problems) or None
        return UnackedEntry(message=CeleryMessage(problem=problem), problem=problem)
    exchange = read_text(value[1], "exchange", problems)
    routing_key = read_text(value[2], "routing_key", problems)
    message = _decode_parsed(value[0], cut_body, _Fields())
    return UnackedEntry(
        message=message,
        exchange=exchange,
        routing_key=routing_key,
        problem="; ".join(problems) or None,
    )


def preview(message: CeleryMessage, limit: int = PREVIEW_CHARS) -> str:
    """One line such as ``tasks.add(2, b=5)``, at most ``limit`` characters plus "…".

    When the arguments were not decoded, Celery's ``argsrepr``/``kwargsrepr`` stand in,
    shown as they are (``tasks.add (2,) {'b': 5}``), or "?" for arguments unknown.
    """
    if message.args is not None and message.kwargs is not None:
        call = payloads.DecodedCall(
            message.task, message.args, message.kwargs, message.serializer or "unknown"
        )
        return payloads.call_preview(call, limit)
    name = message.task or "?"
    if message.argsrepr is None and message.kwargsrepr is None:
        return payloads.call_preview(payloads.DecodedCall(name, None, None, "unknown"), limit)
    shown = " ".join(x for x in (name, message.argsrepr, message.kwargsrepr) if x is not None)
    return shown if len(shown) <= limit else shown[: max(limit, 0)] + "…"
