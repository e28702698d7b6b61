"""RQ's payloads as text: the call in ``data``, ``meta``, results and tracebacks.

Each entry point takes bytes and returns plain values, so :mod:`jobbridge.offload` may run it
in its decoding process; decoding is :mod:`jobbridge.adapters.rq.decode` (docs/rq.md).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from jobbridge.adapters import payloads
from jobbridge.adapters.fields import (
    MAX_ERROR_CHARS,
    MAX_NAME_CHARS,
    cap,
    correlation_of,
    principal_of,
    text,
)
from jobbridge.adapters.payloads import DETAIL_CHARS, PREVIEW_CHARS
from jobbridge.adapters.rq import decode
from jobbridge.adapters.rq.hashes import epoch_datetime

# ------------------------------------------------------------------------------------------
# Payloads (each entry point takes bytes and returns plain values: jobbridge.offload may run
# it in its decoding process)


class CallSummary(NamedTuple):
    """What a row shows of a job's ``data``: the call, never executed."""

    name: str
    preview: str
    principal_id: str | None
    correlation_id: str | None
    #: what could not be decoded (None when all was)
    problem: str | None
    #: "pickle", "json", … as payloads found it
    serializer: str


#: bytes a row inflates a ``data`` field or an error text to, at most: a row shows 160
#: characters of the call and MAX_ERROR_CHARS of the error, and decoding costs what the
#: inflated bytes weigh, not what is stored (a 138-byte zlib stream can inflate to 4 MiB),
#: so this keeps each row's decoding to about a millisecond on the event loop
ROW_INFLATED_BYTES = 64 * 1024


def summarize_call(data: bytes) -> CallSummary:
    """The function name, a one-line preview and the identity fields of a ``data`` field."""
    return _summary(decode.decode_call(data, ROW_INFLATED_BYTES))


def _summary(call: payloads.DecodedCall) -> CallSummary:
    kwargs = call.kwargs if isinstance(call.kwargs, Mapping) else None
    name = call.func_name if isinstance(call.func_name, str) else ""
    return CallSummary(
        name=cap(name, MAX_NAME_CHARS) or "",
        preview=payloads.call_preview(call, PREVIEW_CHARS),
        principal_id=principal_of(kwargs),
        correlation_id=correlation_of(kwargs),
        problem=cap(call.problem, MAX_NAME_CHARS) if call.problem else None,
        serializer=str(call.serializer or ""),
    )


def detail_call(data: bytes) -> tuple[CallSummary, str, str]:
    """A ``data`` field decoded once for the job page: the row's summary, the call as
    text, and its serializer."""
    call = decode.decode_call(data)
    return _summary(call), *_call_text(call)


def _call_text(call: payloads.DecodedCall) -> tuple[str, str]:
    lines = [f"function: {call.func_name or '(unknown)'}"]
    if call.args is not None:
        lines.append("args: " + _jsonish_text(call.args))
    if call.kwargs is not None:
        lines.append("kwargs: " + _jsonish_text(call.kwargs))
    if call.problem:
        lines.append(f"[not fully decoded: {call.problem}]")
    return clip("\n".join(lines), DETAIL_CHARS), str(call.serializer or "")


def describe_value(raw: bytes) -> str:
    """A serialized value (``meta``, a return value) as text; never unpickled."""
    value, serializer, problem = payloads.decode_value(raw)
    shown = _jsonish_text(value) if problem is None or value is not None else ""
    if problem:
        shown += f"{' ' if shown else ''}[{serializer or 'value'} not fully decoded: {problem}]"
    return clip(shown, DETAIL_CHARS)


#: how deep and how wide a decoded value is walked to make it JSON-ready
_JSONISH_DEPTH = 32
_JSONISH_ITEMS = 10_000


def jsonish(value: Any, depth: int = 0) -> Any:
    """A decoded value made of plain JSON types: tuples and sets become lists, bytes and
    anything else their short repr, keys text; bounded in depth and width."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth >= _JSONISH_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())[:_JSONISH_ITEMS]
        return {_key_text(k): jsonish(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonish(v, depth + 1) for v in list(value)[:_JSONISH_ITEMS]]
    return cap(repr(value), MAX_NAME_CHARS)


def _key_text(key: object) -> str:
    return key if isinstance(key, str) else cap(repr(key), MAX_NAME_CHARS) or ""


def _jsonish_text(value: Any) -> str:
    shown, _ = payloads.json_detail(jsonish(value))
    return shown or "null"


def clip(shown: str, limit: int) -> str:
    return shown if len(shown) <= limit else shown[:limit] + "…"


#: RQ's result types (rq/results.py ``Result.Type``)
RESULT_TYPES: Mapping[str, str] = {
    "1": "successful",
    "2": "failed",
    "3": "stopped",
    "4": "retried",
    "5": "max retries exceeded",
}


def result_error(entry: Mapping[bytes, bytes] | None) -> tuple[str | None, str | None]:
    """(error text, problem) of a results-stream entry: its ``exc_string``, capped."""
    if not entry:
        return None, None
    raw = entry.get(b"exc_string")
    if not raw:
        return None, None
    shown, problem = decode.decode_exc_string(raw, ROW_INFLATED_BYTES)
    return cap(headline_first(shown), MAX_ERROR_CHARS), _error_problem(problem)


def legacy_error(raw: bytes | None) -> tuple[str | None, str | None]:
    """(error text, problem) of a hash's legacy ``exc_info`` (zlib of UTF-8), capped;
    ``zlib('')``, which RQ's requeue writes, is no error."""
    if not raw:
        return None, None
    shown, problem = decode.decode_exc_info(raw, ROW_INFLATED_BYTES)
    return cap(headline_first(shown or None), MAX_ERROR_CHARS), _error_problem(problem)


_TRACEBACK_HEAD = "Traceback (most recent call last):"


def headline_first(error: str | None) -> str | None:
    """A Python traceback with its exception line (``ValueError: kaput``) put first.

    Lists show the start of an error, and every traceback starts with the same line; the
    exception line, which tells failures apart, is its last unindented line.
    """
    if error is None or not error.startswith(_TRACEBACK_HEAD):
        return error
    lines = [line for line in error.rstrip().splitlines()[-50:] if line.strip()]
    last = next((line for line in reversed(lines) if not line[:1].isspace()), None)
    if last is None or last == _TRACEBACK_HEAD:
        return error
    return f"{last}\n\n{error}"


def _error_problem(problem: str | None) -> str | None:
    return f"its error text could not be decoded: {problem}" if problem else None


def describe_result(
    entry_id: bytes | None, entry: Mapping[bytes, bytes] | None, value_text: str = ""
) -> str:
    """The latest results-stream entry as text for the job page: its type, time, worker,
    and the return value (``value_text``: :func:`describe_stream_value` of it); an exception
    is only pointed to (it is the row's ``last_error``)."""
    if not entry:
        return ""
    kind = RESULT_TYPES.get(text(entry.get(b"type")) or "", "of unknown type")
    lines = [f"latest result: {kind}"]
    when = _stream_time(entry_id)
    if when is not None:
        lines[0] += f" at {when.strftime('%Y-%m-%d %H:%M:%S.%fZ')}"
    worker = cap(text(entry.get(b"worker_name")), MAX_NAME_CHARS)
    if worker:
        lines.append(f"worker: {worker}")
    if value_text:
        lines.append("return value: " + value_text)
    error, problem = result_error(entry)
    if error:
        # the row's last_error is this same text: the page shows it once, under "Last error"
        lines.append("exception: shown under Last error")
    if problem:
        lines.append(f"[{problem}]")
    return "\n".join(lines)


def describe_stream_value(value: bytes) -> str:
    """A results-stream ``return_value``: base64 of the serializer's bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "[not base64: it cannot be decoded]"
    return describe_value(raw)


def _stream_time(entry_id: bytes | None) -> datetime | None:
    """The creation time a stream entry id (``<ms>-<seq>``) carries."""
    if not entry_id:
        return None
    head = entry_id.split(b"-", 1)[0]
    if not head.isdigit() or len(head) > 15:
        return None
    return epoch_datetime(int(head) / 1000)
