"""RQ's ``data`` field (the call) and its tracebacks, decoded without executing anything.

RQ does not store the serializer: it is sniffed, and pickles go through
:func:`jobbridge.adapters.unpickle.restricted_loads`. Every input is capped (docs/rq.md).
"""

from __future__ import annotations

import base64
import pickletools
import re
from _json import scanstring
from typing import Any

from jobbridge.adapters.payloads import (
    MAX_INPUT_BYTES,
    DecodedCall,
    clean_name,
    inflate_capped,
    loads_json,
)
from jobbridge.adapters.unpickle import (
    MAX_INFLATED_BYTES,
    MAX_NAME_CHARS,
    PUT_OPS,
    STRING_OPS,
    restricted_loads,
)

#: base64 characters read of an ``exc_string`` (they decode to ``MAX_INPUT_BYTES``)
_MAX_BASE64_CHARS = (MAX_INPUT_BYTES + 2) // 3 * 4

_JSON_START = re.compile(rb"[ \t\r\n]*[\[{]")
_JSON_NAME = re.compile(rb'[ \t\r\n]*\[[ \t\r\n]*"')


def _first_pickled_string(data: bytes) -> str | None:
    """RQ's function name: the first item of its pickled 4-tuple, when a string.

    Read from the opcodes alone, so it comes back even when the arguments are refused. RQ
    pickles ``(func_name, instance, args, kwargs)``, which every protocol writes as MARK,
    the items, TUPLE: a pickle that does not open with MARK and a string (a bare
    ``__reduce__``: "posix", "system", STACK_GLOBAL, ...) or whose string is the module
    half of a global is not RQ's, and has no function name.
    """
    try:
        ops = (
            (op.name, arg)
            for op, arg, _pos in pickletools.genops(data)
            if op.name not in PUT_OPS and op.name not in ("PROTO", "FRAME")
        )
        first, (kind, name), after = next(ops), next(ops), next(ops, ("STOP", None))
        if first[0] != "MARK" or kind not in STRING_OPS or not isinstance(name, str):
            return None
        if after[0] in STRING_OPS and next(ops, ("STOP", None))[0] == "STACK_GLOBAL":
            return None
        return clean_name(name)
    except Exception:  # genops raises many types on hostile input: the name is unknown
        return None


def _first_json_string(text: bytes) -> str | None:
    """The function name that opens RQ's JSON list, even when the rest is not readable."""
    found = _JSON_NAME.match(text)
    if found is None:
        return None
    window = text[found.end() : found.end() + 8 * MAX_NAME_CHARS].decode("utf-8", "replace")
    try:
        name, _end = scanstring(window, 0)
    except ValueError:
        return None
    return clean_name(name)


def _sniff(data: bytes) -> str:
    """The serializer inflated ``data`` was written with (RQ does not store it): "json" for
    ``[`` (or ``{``, not RQ's list but JSON all the same), "pickle" for ``\x80`` or the ``(``
    that opens a tuple in protocols 0 and 1, else "unknown"."""
    if _JSON_START.match(data):
        return "json"
    if data[:1] == b"(" or (data[:1] == b"\x80" and data[1:2] < b"\x06"):
        return "pickle"
    return "unknown"


def _call_from(value: Any, serializer: str) -> DecodedCall:
    """A decoded ``(func_name, instance, args, kwargs)``, each part checked."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        shape = "list" if serializer == "json" else "tuple"
        problem = f"not RQ's (function, instance, args, kwargs) {shape}"
        return DecodedCall(None, None, None, serializer, problem)
    name, _instance, args, kwargs = value
    problems = []
    if not isinstance(name, str):
        problems.append("the function name is not a string")
    if not isinstance(args, list | tuple):
        problems.append("args are not a list")
    named = isinstance(kwargs, dict) and all(isinstance(key, str) for key in kwargs)
    if not named:
        problems.append("kwargs are not a mapping of names")
    return DecodedCall(
        func_name=clean_name(name) if isinstance(name, str) else None,
        args=list(args) if isinstance(args, list | tuple) else None,
        kwargs=kwargs if named else None,
        serializer=serializer,
        problem="; ".join(problems) or None,
    )


def _json_call(data: bytes) -> DecodedCall:
    try:
        value = loads_json(data)
    except ValueError as exc:
        problem = f"arguments not decoded (JSON: {exc})"
        return DecodedCall(_first_json_string(data), None, None, "json", problem)
    return _call_from(value, "json")


def _pickle_call(data: bytes) -> DecodedCall:
    try:
        value = restricted_loads(data)
    except ValueError as exc:
        name = _first_pickled_string(data)
        if name is None:
            problem = f"not RQ's (function, instance, args, kwargs) tuple (pickle: {exc})"
        else:
            problem = f"arguments not decoded (pickle: {exc})"
        return DecodedCall(name, None, None, "pickle", problem)
    return _call_from(value, "pickle")


def _partial_call(prefix: bytes, problem: str) -> DecodedCall:
    """Only the start of the call could be read: its function name, if that."""
    serializer = _sniff(prefix)
    if serializer == "json":
        name = _first_json_string(prefix)
    else:
        name = _first_pickled_string(prefix) if serializer == "pickle" else None
    return DecodedCall(name, None, None, serializer, f"arguments not decoded ({problem})")


def _decode_call(data: bytes, limit: int) -> DecodedCall:
    if not data:
        return DecodedCall(None, None, None, "unknown", "the data field is empty")
    head = data[:MAX_INPUT_BYTES]
    inflated, state = inflate_capped(head, limit)
    if state == "raw":  # RQ reads bytes that are not zlib as they are
        inflated, state = head, "done"
    if len(data) > MAX_INPUT_BYTES:
        read = f"only the first {MAX_INPUT_BYTES:,} of {len(data):,} bytes are read"
        return _partial_call(inflated, read)
    if state == "capped":
        return _partial_call(inflated, f"it inflates past {limit:,} bytes")
    if state == "cut":
        return _partial_call(inflated, "the zlib stream is cut short or corrupt")
    serializer = _sniff(inflated)
    if serializer == "json":
        return _json_call(inflated)
    if serializer == "pickle":
        return _pickle_call(inflated)
    problem = f"neither JSON nor a pickle (it starts with {inflated[:8]!r})"
    return DecodedCall(None, None, None, "unknown", problem)


def decode_call(data: bytes, limit: int = MAX_INFLATED_BYTES) -> DecodedCall:
    """The call in RQ's job ``data`` field, ``zlib(serializer.dumps((func_name, instance,
    args, kwargs)))``, decoded without executing anything. Never raises.

    The serializer is not stored: after inflating (capped, see :func:`inflate`) a ``[``
    means JSON and ``\\x80`` (or the ``(`` of protocols 0 and 1) a pickle, read with
    :func:`restricted_loads`. The function name is read from the opcodes on its own, so it
    comes back even when an argument (a datetime) or a bound method's instance is refused;
    ``problem`` then says what was. Only the first ``MAX_INPUT_BYTES`` are read: a hostile
    job's data may be of any size. ``limit`` caps the inflated size (and so the work): a
    table row needs far less than a detail page.
    """
    try:
        return _decode_call(data, limit)
    except Exception as exc:  # the last guard: a page must render whatever is stored
        problem = f"could not be decoded ({type(exc).__name__})"
        return DecodedCall(None, None, None, "unknown", problem)


def _exc_text(packed: bytes, plain_is_fine: bool, limit: int) -> tuple[str | None, str | None]:
    """Inflated (capped) exception text: (text, problem); None for no text."""
    data, state = inflate_capped(packed, limit)
    problem = None
    if state == "raw":
        data = packed
        problem = None if plain_is_fine else "it is not zlib-compressed; shown as stored"
    elif state == "capped":
        problem = f"it inflates past {limit:,} bytes; only the start is shown"
    elif state == "cut":
        problem = "its zlib stream is cut short or corrupt; only the start is shown"
    return data.decode("utf-8", "replace") or None, problem


def _read_note(size: int, read: int, problem: str | None) -> str | None:
    if size <= read:
        return problem
    note = f"only the first {read:,} of {size:,} bytes are read"
    return f"{note}; {problem}" if problem else note


def decode_exc_string(
    field: bytes | str, limit: int = MAX_INFLATED_BYTES
) -> tuple[str | None, str | None]:
    """A results-stream ``exc_string`` (base64 of zlib of UTF-8): (text, problem).

    The inflated text is capped at ``MAX_INFLATED_BYTES`` (a zlib bomb must not exhaust
    memory) and only the first ``MAX_INPUT_BYTES`` of the field are read; undecodable UTF-8
    is replaced. Text is None when there is none. Never raises.
    """
    if not field:
        return None, None
    try:
        packed = base64.b64decode(field[:_MAX_BASE64_CHARS], validate=True)
    except ValueError:  # binascii.Error, or a str that is not ASCII
        return None, "exc_string is not base64"
    text, problem = _exc_text(packed, False, limit)
    return text, _read_note(len(field), _MAX_BASE64_CHARS, problem)


def decode_exc_info(raw: bytes, limit: int = MAX_INFLATED_BYTES) -> tuple[str | None, str | None]:
    """A job hash's legacy ``exc_info`` (zlib of UTF-8, no base64): (text, problem).

    Bytes that are not zlib are the text itself, as RQ reads them (a stream cut short shows
    what it holds up to the cut); ``zlib('')``, which RQ's requeue writes, gives None. Capped
    as :func:`decode_exc_string` is. Never raises.
    """
    if not raw:
        return None, None
    text, problem = _exc_text(raw[:MAX_INPUT_BYTES], True, limit)
    return text, _read_note(len(raw), MAX_INPUT_BYTES, problem)
