"""kombu's JSON envelope on Redis (docs/celery.md §2.1), built and opened without kombu::

    {"body": "<base64 of JSON>", "content-encoding": "utf-8",
     "content-type": "application/json", "headers": {...},
     "properties": {..., "body_encoding": "base64", "delivery_tag": "<uuid4>"}}

What goes in is checked to be plain JSON; what comes out of an event channel or a reply list
is hostile and never makes a decoder raise.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from jobbridge import safejson

#: the envelope's ``content-type`` of a JSON body
CONTENT_JSON = "application/json"
#: the envelope's ``content-encoding`` of a JSON body
ENCODING_UTF8 = "utf-8"
#: kombu's ``body_encoding`` on Redis
BODY_ENCODING = "base64"

#: envelopes over this many bytes are not decoded (an event or reply is a few KiB)
MAX_ENVELOPE_BYTES = 1024 * 1024
#: events read from one message (a ``task.multi`` list)
MAX_EVENTS = 1000
#: Celery cuts ``argsrepr`` / ``kwargsrepr`` at this many characters
MAX_REPR_CHARS = 1024


def check_plain(value: Any, what: str) -> None:
    """Raise ValueError unless ``value`` is JSON made of plain values: None, bool, int,
    finite float, UTF-8 text, lists (or tuples) and dicts with text keys."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > safejson.MAX_DEPTH:
            raise ValueError(f"{what} is nested deeper than {safejson.MAX_DEPTH} levels")
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{what} holds {item!r}, which JSON does not have")
        elif isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"{what} has a {type(key).__name__} key: JSON keys are text")
                _check_text(key, what)
                stack.append((child, depth + 1))
        else:
            raise ValueError(f"{what} holds a {type(item).__name__}, not a plain JSON value")


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} holds text that is not UTF-8 (a lone surrogate)") from None


class _Piece(str):
    """Literal text among :func:`short_repr`'s pieces (not a value to repr)."""


def short_repr(value: Any, limit: int = MAX_REPR_CHARS) -> str:
    """Python's ``repr`` of plain values, at most ``limit`` characters (cut ones end in
    "..."), built piece by piece so a huge value costs only what is shown. A tuple (the
    arguments of a call) is shown as one, ``(1,)``, as Celery's ``argsrepr`` shows it."""
    out: list[str] = []
    size = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack and size <= limit:
        item = next(stack[-1], _DONE)
        if item is _DONE:
            stack.pop()
            continue
        if isinstance(item, _Piece):
            piece = str(item)
        elif isinstance(item, str):
            piece = repr(item[: limit + 1])
        elif isinstance(item, list | tuple | dict):
            stack.append(_container_pieces(item))
            continue
        else:
            piece = repr(item)
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    if len(text) > limit:
        return text[: max(limit - 3, 0)] + "..."
    return text


_DONE = object()


def _container_pieces(item: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> Iterator[Any]:
    """A container's opening, items with separators and closing, one at a time."""
    if isinstance(item, dict):
        yield _Piece("{")
        for index, (key, child) in enumerate(item.items()):
            if index:
                yield _Piece(", ")
            yield key
            yield _Piece(": ")
            yield child
        yield _Piece("}")
        return
    yield _Piece("[" if isinstance(item, list) else "(")
    for index, child in enumerate(item):
        if index:
            yield _Piece(", ")
        yield child
    if isinstance(item, list):
        yield _Piece("]")
    else:
        yield _Piece(",)" if len(item) == 1 else ")")


def json_envelope(body: Any, headers: Mapping[str, Any], properties: Mapping[str, Any]) -> bytes:
    """kombu's JSON envelope, keys in the order kombu writes them, the body base64."""
    encoded = base64.b64encode(json.dumps(body).encode("utf-8")).decode("ascii")
    envelope = {
        "body": encoded,
        "content-encoding": ENCODING_UTF8,
        "content-type": CONTENT_JSON,
        "headers": dict(headers),
        "properties": dict(properties),
    }
    return json.dumps(envelope).encode("utf-8")


def _open_envelope(raw: bytes, max_bytes: int) -> tuple[Any, Mapping[str, Any]]:
    """A JSON envelope's decoded body and its headers.

    Raises:
        ValueError: too big, not a JSON envelope, another content type, compressed, or a
            body that is not (base64 of) JSON.
    """
    if not isinstance(raw, bytes | bytearray) or len(raw) > max_bytes:
        raise ValueError("not bytes, or over the cap")
    envelope = safejson.loads(bytes(raw))
    if not isinstance(envelope, dict) or envelope.get("content-type") != CONTENT_JSON:
        raise ValueError("not a JSON envelope")
    headers = envelope.get("headers")
    headers = headers if isinstance(headers, dict) else {}
    if "compression" in headers:
        raise ValueError("compressed")
    properties = envelope.get("properties")
    encoding = properties.get("body_encoding") if isinstance(properties, dict) else None
    body = envelope.get("body")
    if not isinstance(body, str):
        raise ValueError("the body is not text")
    if encoding == BODY_ENCODING:
        data = base64.b64decode(body, validate=True)
    elif encoding is None:
        data = body.encode("utf-8")
    else:
        raise ValueError("an unknown body encoding")
    return safejson.loads(data), headers


def decode_event(raw: bytes) -> list[dict[str, Any]]:
    """The events one message on an event channel carries; never raises.

    A message holds one event (a map), or a list of them on ``…/task.multi`` (task events a
    worker buffered). Only maps with a text ``type`` are returned, at most
    :data:`MAX_EVENTS`; a message over :data:`MAX_ENVELOPE_BYTES`, not JSON (a pickle
    included), compressed or malformed gives ``[]``.
    """
    try:
        value, _ = _open_envelope(raw, MAX_ENVELOPE_BYTES)
    except Exception:  # hostile bytes: whatever fails, the message carries nothing usable
        return []
    items = value[:MAX_EVENTS] if isinstance(value, list) else [value]
    return [e for e in items if isinstance(e, dict) and isinstance(e.get("type"), str)]


def decode_reply(
    raw: bytes, *, ticket: str | None = None, max_bytes: int = MAX_ENVELOPE_BYTES
) -> dict[str, Any] | None:
    """A pidbox reply a worker LPUSHed onto a reply list: its body ``{node name: answer}``.

    None when it is malformed, not JSON, over ``max_bytes``, or (with ``ticket``) answers
    another broadcast (the ``ticket`` header is the broadcast's). Never raises.
    """
    try:
        value, headers = _open_envelope(raw, max_bytes)
    except Exception:  # hostile bytes
        return None
    if ticket is not None and headers.get("ticket") != ticket:
        return None
    return value if isinstance(value, dict) else None
