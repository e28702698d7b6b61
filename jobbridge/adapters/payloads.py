"""Safe payload previews and decoding shared by every system: size-capped, never executed.

Payloads are attacker-controlled: everything here produces plain values and text that
templates escape, and every input is capped before any work. Pickles go through
:mod:`jobbridge.adapters.unpickle`; RQ's own fields are decoded in
:mod:`jobbridge.adapters.rq.decode` (docs/rq.md, docs/celery.md).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jobbridge import safejson
from jobbridge.adapters.unpickle import MAX_INFLATED_BYTES, MAX_ITEMS, MAX_NAME_CHARS, Refused

# re-exported: Celery's messages read pickle bodies as payloads.restricted_loads
from jobbridge.adapters.unpickle import restricted_loads as restricted_loads

#: characters of a payload shown in a table row
PREVIEW_CHARS = 160
#: characters of a payload shown on a detail page
DETAIL_CHARS = 65_536
#: bytes of input the decoders look at (a stored value, RQ's compressed ``data``, a ``meta``
#: or return value); anything past is not read: hostile values may be of any size
MAX_INPUT_BYTES = 1_048_576


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + "…", True


def _encode_bounded(value: Any, limit: int, indent: int | None) -> tuple[str, bool]:
    """JSON text of a decoded value, cut at ``limit`` characters, and whether it was cut.

    The encoder yields the text piece by piece and stops once past the limit, so a preview of
    a payload of many megabytes costs what the preview shows, not what the payload holds.
    """
    encoder = json.JSONEncoder(
        ensure_ascii=False,
        indent=indent,
        separators=(",", ":") if indent is None else (",", ": "),
        allow_nan=True,
        check_circular=False,
    )
    pieces: list[str] = []
    size = 0
    for piece in encoder.iterencode(value):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    return _cut("".join(pieces), limit)


#: values decoded from at most this many bytes are encoded whole (C-fast), then cut
WHOLE_ENCODE_BYTES = 64 * 1024


def json_preview(value: Any, limit: int = PREVIEW_CHARS, *, source_bytes: int | None = None) -> str:
    """One compact line of a decoded JSON value, cut at ``limit`` characters.

    ``source_bytes``: the size of the text the value was decoded from, when known; a small
    one is encoded whole by the C encoder, a big or unknown one piece by piece up to the limit.
    """
    if value is None:
        return ""
    if source_bytes is not None and source_bytes <= WHOLE_ENCODE_BYTES:
        return _cut(json.dumps(value, ensure_ascii=False, separators=(",", ":")), limit)[0]
    return _encode_bounded(value, limit, None)[0]


def json_detail(value: Any, limit: int = DETAIL_CHARS) -> tuple[str, str]:
    """Indented JSON of a decoded value and its kind ("json", "json (truncated)", "empty")."""
    if value is None:
        return "", "empty"
    text, cut = _encode_bounded(value, limit, 2)
    return text, "json (truncated)" if cut else "json"


#: compressed bytes fed to the inflater at a time, so what it leaves unread is never copied
_INFLATE_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class DecodedCall:
    """The call a job's ``data`` field holds, decoded without executing anything."""

    #: RQ's dotted function path (a method's bare name when ``instance`` was set), capped at
    #: ``MAX_NAME_CHARS``; None if unreadable
    func_name: str | None
    #: plain values only (str, int, float, bool, None, bytes, bytearray, list, tuple, dict,
    #: set, frozenset); None when not recoverable
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    #: "json", "pickle" or "unknown"
    serializer: str
    #: why something could not be decoded, in words; None when all was
    problem: str | None = None


def inflate_capped(raw: bytes, limit: int) -> tuple[bytes, str]:
    """Inflate at most ``limit`` bytes of a zlib stream: (output, state).

    state is "done" (the whole stream), "capped" (output is the first ``limit`` bytes of more),
    "cut" (the stream ends early or breaks: output is what came before) or "raw" (not zlib:
    output is empty). Input goes in by chunks and output out by chunks, so memory stays near
    ``limit`` whatever the stream holds or how much of the input is left unread.
    """
    inflater = zlib.decompressobj()
    out = bytearray()
    view = memoryview(raw)
    try:
        for start in range(0, len(raw), _INFLATE_CHUNK):
            pending: bytes | memoryview = view[start : start + _INFLATE_CHUNK]
            while not inflater.eof:
                # never 0: a max_length of 0 means "no limit"
                room = min(limit + 1 - len(out), _INFLATE_CHUNK)
                piece = inflater.decompress(pending, room)
                out += piece
                if len(out) > limit:
                    del out[limit:]
                    return bytes(out), "capped"
                pending = inflater.unconsumed_tail
                if not piece:  # everything given was read; with no output, it needs more
                    break
            if inflater.eof:  # bytes after the stream are ignored, as zlib.decompress does
                return bytes(out), "done"
    except zlib.error:
        pass
    return bytes(out), "cut" if out else "raw"


def inflate(raw: bytes, limit: int = MAX_INFLATED_BYTES) -> tuple[bytes, str | None]:
    """zlib-decompress ``raw`` with a hard cap on the output: (data, problem).

    A few kilobytes of zlib can inflate to gigabytes, so nothing past ``limit`` bytes is ever
    held. Bytes that are not zlib come back as they are (RQ's readers fall back to the raw
    bytes), and so does a stream that is cut short or corrupt (with a problem). A stream that
    inflates past ``limit`` gives its first ``limit`` bytes and a problem naming the cap.
    """
    limit = max(limit, 0)
    data, state = inflate_capped(raw, limit)
    if state == "done":
        return data, None
    if state == "capped":
        return data, f"inflates past the {limit:,}-byte cap; only the first {limit:,} bytes kept"
    if state == "cut":
        return raw, "the zlib stream is cut short or corrupt; kept as stored, as RQ does"
    return raw, None


_JSON_STRING = re.compile(rb'"[^"]*"')


def _json_items(text: bytes) -> int:
    """How many values JSON text may hold (commas and brackets), at C speed."""
    count = text.count(b",") + text.count(b"[") + text.count(b"{")
    if count <= MAX_ITEMS:
        return count
    # Commas in strings (a CSV argument) count too: count again without the strings.
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    bare = _JSON_STRING.sub(b"", text)
    return bare.count(b",") + bare.count(b"[") + bare.count(b"{")


def loads_json(text: bytes) -> Any:
    """safejson's decoding, refused past ``MAX_ITEMS`` values (NaN is refused too)."""
    if _json_items(text) > MAX_ITEMS:
        raise Refused(f"holds more than {MAX_ITEMS:,} values")
    return safejson.loads(text)


def clean_name(name: str) -> str:
    """A function name capped, without the lone surrogates no page can print."""
    return name[:MAX_NAME_CHARS].encode("utf-8", "replace").decode("utf-8")


def _decode_value(raw: bytes) -> tuple[Any, str, str | None]:
    if not raw:
        return None, "unknown", "the value is empty"
    if len(raw) > MAX_INPUT_BYTES:
        problem = f"{len(raw):,} bytes, over the {MAX_INPUT_BYTES:,}-byte cap: not decoded"
        return None, "unknown", problem
    try:
        return loads_json(raw), "json", None
    except ValueError as exc:
        json_problem = str(exc)
    try:
        return restricted_loads(raw), "pickle", None
    except ValueError as exc:
        if isinstance(exc, Refused) or raw[:1] == b"\x80":  # a pickle, refused
            return None, "pickle", f"not decoded (pickle: {exc})"
        pickle_problem = str(exc)
    return None, "unknown", f"neither JSON ({json_problem}) nor a pickle ({pickle_problem})"


def decode_value(raw: bytes) -> tuple[Any, str, str | None]:
    """RQ's ``meta`` field, or a result's base64-decoded ``return_value``: (value, serializer,
    problem). Never raises.

    JSON when it parses as JSON (safejson: NaN and Infinity are refused), else a pickle read
    with :func:`restricted_loads`; the value is None whenever ``problem`` is set. Values over
    ``MAX_INPUT_BYTES`` are not read at all: they are attacker-controlled and of any size.
    """
    try:
        return _decode_value(raw)
    except Exception as exc:  # the last guard: a page must render whatever is stored
        return None, "unknown", f"could not be decoded ({type(exc).__name__})"


_EMPTY = {list: "[]", tuple: "()", dict: "{}", set: "set()", frozenset: "frozenset()"}
_BRACKETS = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    dict: ("{", "}"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}


def _scalar_repr(value: Any, budget: int) -> str:
    """repr of a plain scalar, costing at most about ``budget`` characters."""
    if isinstance(value, str | bytes | bytearray):
        return repr(value[: budget + 1])  # a longer one is cut anyway: never repr it whole
    if isinstance(value, int):
        try:
            return repr(value)
        except ValueError:  # more digits than Python prints
            return f"<int of {value.bit_length():,} bits>"
    if isinstance(value, float) or value is None:
        return repr(value)
    return f"<{type(value).__name__}>"  # not a plain value: its repr could be anything


def _repr_pieces(value: Any, budget: int, depth: int = 0) -> Iterator[str]:
    """A Python-like repr of a plain value, piece by piece (the caller stops when it has
    enough); containers past ``safejson.MAX_DEPTH`` levels show as "…"."""
    kind = next((k for k in _BRACKETS if isinstance(value, k)), None)
    if kind is None:
        yield _scalar_repr(value, budget)
        return
    if depth >= safejson.MAX_DEPTH:
        yield "…"
        return
    if not value:
        yield _EMPTY[kind]
        return
    opening, closing = _BRACKETS[kind]
    yield opening
    for index, item in enumerate(value.items() if kind is dict else value):
        if index:
            yield ", "
        if kind is dict:
            yield from _repr_pieces(item[0], budget, depth + 1)
            yield ": "
            item = item[1]
        yield from _repr_pieces(item, budget, depth + 1)
    if kind is tuple and len(value) == 1:
        yield ","
    yield closing


def _call_pieces(call: DecodedCall, budget: int) -> Iterator[str]:
    yield clean_name(call.func_name) if call.func_name else "?"
    yield "("
    separator = ""
    for arg in call.args or ():
        yield separator
        yield from _repr_pieces(arg, budget)
        separator = ", "
    for key, value in (call.kwargs or {}).items():
        yield separator
        if isinstance(key, str) and key.isidentifier():
            yield key
        else:
            yield from _repr_pieces(key, budget)
        yield "="
        yield from _repr_pieces(value, budget)
        separator = ", "
    if call.args is None or call.kwargs is None:
        yield f"{separator}?"  # arguments that could not be decoded
    yield ")"


def call_preview(call: DecodedCall, limit: int) -> str:
    """One line such as ``tasks.add(2, b=5)``, at most ``limit`` characters plus "…".

    Arguments show as Python reprs of their plain values, "?" stands for arguments that could
    not be decoded. Nothing is escaped (templates do that). The line is built piece by piece
    and stops once past ``limit``, so a huge argument list costs what the preview shows.
    """
    pieces: list[str] = []
    size = 0
    for piece in _call_pieces(call, max(limit, 0)):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    return _cut("".join(pieces), max(limit, 0))[0]
