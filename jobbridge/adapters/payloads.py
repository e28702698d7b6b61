"""Safe payload previews and decoding: size-capped, never an executed unpickle.

Payloads are attacker-controlled. Everything here produces plain values and text that
templates escape. Pickle data is either described as an opcode listing by ``pickletools``
(which reads opcodes and never builds objects) or, for RQ's payloads, loaded by an unpickler
that refuses every global and call after its opcodes were checked, so no code in a payload can
run. Every input is capped before any work (``MAX_INPUT_BYTES``, ``MAX_INFLATED_BYTES``,
``MAX_ITEMS``): zlib bombs and pickles built to allocate cost a bounded amount of memory.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import pickle
import pickletools
import re
import zlib
from _json import scanstring
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jobbridge import safejson

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


def _pickle_listing(data: bytes, limit: int) -> str:
    out = io.StringIO()
    try:
        for opcode, arg, pos in pickletools.genops(data):
            shown = "" if arg is None else " " + repr(arg)[:200]
            out.write(f"{pos:>6}: {opcode.name}{shown}\n")
            if out.tell() > limit:
                break
    except Exception as exc:  # genops raises many types on hostile input
        out.write(f"[listing stopped: {type(exc).__name__}]\n")
    return _cut(out.getvalue(), limit)[0]


def describe_bytes(raw: bytes, limit: int = DETAIL_CHARS) -> tuple[str, str]:
    """Text for an opaque stored payload, and what kind it was found to be.

    Tries, in order: JSON (UTF-8), zlib-compressed data (then the same checks on what it
    holds), a pickle opcode listing, UTF-8 text, and finally a hex dump.
    """
    data = raw[:MAX_INPUT_BYTES]
    truncated_input = len(raw) > MAX_INPUT_BYTES
    kind, text = _describe(data, limit, depth=0)
    if truncated_input:
        kind += f" (first {MAX_INPUT_BYTES} bytes)"
    return text, kind


def _describe(data: bytes, limit: int, depth: int) -> tuple[str, str]:
    if not data:
        return "empty", ""
    try:
        decoded = safejson.loads(data)
    except safejson.JSONError:
        pass
    else:
        text, kind = json_detail(decoded, limit)
        return kind, text
    if depth == 0 and data[:1] == b"x":
        try:
            # Cap the output too: a small zlib bomb must not become a huge string.
            inflater = zlib.decompressobj()
            inner = inflater.decompress(data, MAX_INPUT_BYTES)
        except zlib.error:
            pass
        else:
            kind, text = _describe(inner, limit, depth + 1)
            return f"zlib, {kind}", text
    if data[:1] == b"\x80" and len(data) > 2 and data[1] <= 5:
        return "pickle (opcodes listed, not loaded)", _pickle_listing(data, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        hexed = data[: limit // 3].hex(" ")
        return "binary (hex)", _cut(hexed, limit)[0]
    return "text", _cut(text, limit)[0]


# ------------------------------------------------------------------------------------------
# RQ payloads: job ``data``, ``meta``, return values and exception text (docs/rq.md §2, §7)

#: bytes a zlib stream may inflate to before decoding gives up. Deflate reaches about
#: 1000:1, so the 1 MiB of input read could otherwise become a gigabyte (a zlib bomb);
#: 4 MiB holds any realistic call or traceback, and inflating costs about twice that at most.
MAX_INFLATED_BYTES = 4 * 1024 * 1024
#: values a payload may build before decoding gives up: pickle opcodes, or JSON commas and
#: brackets. A 1-byte opcode can build a 216-byte empty set and 3 bytes of JSON (``{},``) a
#: 64-byte dict, so this, not the byte caps, bounds what a decoded value costs (~25 MiB).
MAX_ITEMS = 100_000
#: characters of a function name kept
MAX_NAME_CHARS = 200
#: bits of the longest integer kept: a longer one has more digits than Python will print
#: (``sys.get_int_max_str_digits``), so every later repr or JSON encoding of it would fail
MAX_INT_BITS = 14_000
#: items plus characters a decoded value may expand to when what it shares (pickle memo
#: references) counts each time it appears, as anything that walks or prints it pays
MAX_EXPANDED = 8 * MAX_INFLATED_BYTES
#: compressed bytes fed to the inflater at a time, so what it leaves unread is never copied
_INFLATE_CHUNK = 64 * 1024
#: base64 characters read of an ``exc_string`` (they decode to ``MAX_INPUT_BYTES``)
_MAX_BASE64_CHARS = (MAX_INPUT_BYTES + 2) // 3 * 4


class _Refused(ValueError):
    """A payload over one of the caps, or shaped so that later walks over it would fail."""


class UnsafePickle(_Refused):
    """A pickle asks for something that could run code or exhaust memory: a global (any class
    or function), a call (REDUCE, BUILD, NEWOBJ…), an extension code, a persistent id, an
    out-of-band buffer, a memo slot out of order, or a value that holds itself. Nothing of it
    was run."""


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


def _inflate(raw: bytes, limit: int) -> tuple[bytes, str]:
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
    data, state = _inflate(raw, limit)
    if state == "done":
        return data, None
    if state == "capped":
        return data, f"inflates past the {limit:,}-byte cap; only the first {limit:,} bytes kept"
    if state == "cut":
        return raw, "the zlib stream is cut short or corrupt; kept as stored, as RQ does"
    return raw, None


class _PlainUnpickler(pickle.Unpickler):
    """Builds plain values only: every global and persistent id is refused."""

    def find_class(self, module_name: str, global_name: str, /) -> Any:
        raise UnsafePickle(f"refers to {module_name}.{global_name}, which is never loaded")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickle("refers to a persistent id, which is never loaded")


_STRING_OPS = frozenset(
    {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
    | {"STRING", "BINSTRING", "SHORT_BINSTRING"}
)
#: opcodes that push no value
_FRAMING_OPS = frozenset({"PROTO", "FRAME", "MARK"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
#: opcodes that import, call or reach outside the stream, and what each would do
_REFUSED_OPS: dict[str, str] = {
    **dict.fromkeys(("GLOBAL", "STACK_GLOBAL", "INST"), "refers to a global"),
    **dict.fromkeys(("REDUCE", "BUILD", "OBJ", "NEWOBJ", "NEWOBJ_EX"), "calls an object"),
    **dict.fromkeys(("EXT1", "EXT2", "EXT4"), "refers to an extension code"),
    **dict.fromkeys(("PERSID", "BINPERSID"), "refers to a persistent id"),
    **dict.fromkeys(("NEXT_BUFFER", "READONLY_BUFFER"), "refers to an out-of-band buffer"),
}


def _check_opcodes(data: bytes) -> None:
    """Refuse a pickle from its opcodes alone, before anything is built.

    ``pickletools.genops`` reads opcodes and builds nothing, and it checks each declared
    length against the bytes really there. CPython's unpickler does neither: it allocates a
    ``BINBYTES8`` of the declared size before reading it, and sizes its memo to a ``PUT``
    index, so ten bytes can make it take gigabytes. This pass refuses those, every opcode that
    imports or calls, and more than ``MAX_ITEMS`` opcodes (about a microsecond each).
    """
    stores = 0  # memo slots stored so far: a pickler numbers them in order, from 0
    arg: Any  # genops gives each opcode's argument as decoded: an int for these
    for count, (opcode, arg, pos) in enumerate(pickletools.genops(data), 1):
        name = opcode.name
        if count > MAX_ITEMS:
            raise _Refused(f"holds more than {MAX_ITEMS:,} opcodes")
        if name == "MEMOIZE":
            stores += 1
        elif name in _PUT_OPS:
            if arg > stores:
                raise UnsafePickle(f"stores memo slot {arg:,} out of order")
            stores += 1
        elif name in _REFUSED_OPS:
            raise UnsafePickle(_refusal(data, name, arg, pos))
        elif name == "PROTO" and arg > pickle.HIGHEST_PROTOCOL:
            raise _Refused(f"has an unknown protocol {arg}")


def _refusal(data: bytes, name: str, arg: Any, at: int | None) -> str:
    """What a refused opcode asks for, in words."""
    if name in ("GLOBAL", "INST") and isinstance(arg, str):
        return f"refers to {arg.replace(' ', '.')[:MAX_NAME_CHARS]}, which is never loaded"
    found = _stack_global_name(data, at) if name == "STACK_GLOBAL" else None
    if found is not None:
        return f"refers to {found[:MAX_NAME_CHARS]}, which is never loaded"
    return f"{_REFUSED_OPS[name]} ({name}), which is never done"


def _stack_global_name(data: bytes, at: int | None) -> str | None:
    """The "module.name" a STACK_GLOBAL at offset ``at`` takes from the two strings pushed
    before it (directly or from the memo), when it can tell: the opcodes are read again."""
    memo: dict[int, str | None] = {}
    last: tuple[str | None, str | None] = (None, None)
    arg: Any
    for opcode, arg, pos in pickletools.genops(data):
        name = opcode.name
        if pos == at:
            return f"{last[0]}.{last[1]}" if last[0] and last[1] else None
        if name in _PUT_OPS:
            memo[len(memo) if name == "MEMOIZE" else arg] = last[1]
        elif name in _GET_OPS:
            last = (last[1], memo.get(arg))
        elif name not in _FRAMING_OPS:
            last = (last[1], arg if name in _STRING_OPS and isinstance(arg, str) else None)
    return None


_CONTAINERS = (list, tuple, dict, set, frozenset)
_TEXTS = (str, bytes, bytearray)


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        return itertools.chain(value.keys(), value.values())
    return iter(value)


def _check_shape(value: Any) -> None:
    """Refuse a decoded value that later walks over it would choke on.

    A few pickle bytes (memo references) can build a list that holds itself, one nested
    deeper than ``safejson.MAX_DEPTH``, an integer too long to print, or a list holding
    another twice, 60 levels down: 2**60 items to anything that walks or prints it (an
    encoder, a template). Raises ``_Refused`` (``UnsafePickle`` for a value holding itself).
    """
    if not _check_tree(value):
        _check_shared(value)


def _level_weight(items: list[Any]) -> int:
    """The expanded weight of one level of items, their containers counting 1 each."""
    bits = [item.bit_length() for item in items if isinstance(item, int)]
    if bits and max(bits) > MAX_INT_BITS:
        raise _Refused(f"holds an integer of {max(bits):,} bits")
    texts = [item for item in items if isinstance(item, _TEXTS)]
    return len(items) + sum(map(len, texts)) + sum(bits) // 3


def _check_tree(value: Any) -> bool:
    """:func:`_check_shape`, level by level with work per container done at C speed; False,
    for the exact walk, as soon as a container turns up twice (shared, or holding itself)."""
    seen: set[int] = set()
    level = [value]
    weight = depth = 0
    while True:
        weight += _level_weight(level)
        if weight > MAX_EXPANDED:
            raise _Refused(f"expands to more than {MAX_EXPANDED:,} items and characters")
        containers = [item for item in level if isinstance(item, _CONTAINERS)]
        if not containers:
            return True
        if depth >= safejson.MAX_DEPTH:
            raise _Refused(f"nests deeper than {safejson.MAX_DEPTH} levels")
        ids = set(map(id, containers))
        if len(ids) < len(containers) or not ids.isdisjoint(seen):
            return False
        seen |= ids
        level = list(itertools.chain.from_iterable(map(_children, containers)))
        depth += 1


_END = object()


def _weight(item: Any) -> int:
    """What printing a scalar costs, roughly in characters."""
    if isinstance(item, _TEXTS):
        return 1 + len(item)
    if isinstance(item, int):
        if item.bit_length() > MAX_INT_BITS:
            raise _Refused(f"holds an integer of {item.bit_length():,} bits")
        return 1 + item.bit_length() // 3
    return 1


def _add(frame: list[Any], height: int, weight: int) -> None:
    """Count a child (of ``height`` levels, 0 for a scalar) into its container's frame."""
    frame[2] = max(frame[2], height + 1)
    frame[3] += weight
    if frame[3] > MAX_EXPANDED:
        raise _Refused(f"expands to more than {MAX_EXPANDED:,} items and characters")


def _check_shared(value: Any) -> None:
    """:func:`_check_shape` for a value that shares containers: each is visited once, its
    height and expanded weight remembered, so shared ones cost nothing more."""
    done: dict[int, tuple[int, int]] = {}
    # each frame: [container id, children still to see, height, expanded weight]; the first
    # stands for no container, to hold the value itself
    path: list[list[Any]] = [[0, iter((value,)), 0, 0]]
    on_path: set[int] = set()
    while path:
        frame = path[-1]
        item = next(frame[1], _END)
        if item is _END:
            path.pop()
            on_path.discard(frame[0])
            done[frame[0]] = (frame[2], frame[3])
            if path:
                _add(path[-1], frame[2], frame[3])
        elif not isinstance(item, _CONTAINERS):
            _add(frame, 0, _weight(item))
        elif id(item) in on_path:
            raise UnsafePickle("holds a container that holds itself")
        elif id(item) in done:
            height, weight = done[id(item)]
            if len(path) - 1 + height > safejson.MAX_DEPTH:
                raise _Refused(f"nests deeper than {safejson.MAX_DEPTH} levels")
            _add(frame, height, weight)
        elif len(path) > safejson.MAX_DEPTH:
            raise _Refused(f"nests deeper than {safejson.MAX_DEPTH} levels")
        else:
            path.append([id(item), _children(item), 1, 1])
            on_path.add(id(item))


def restricted_loads(raw: bytes) -> Any:
    """Unpickle plain values only (protocols 0-5); nothing in ``raw`` can run code.

    Stored pickles are attacker-controlled: ``pickle.loads`` would import and call whatever
    they name. Here the opcodes are checked first (see :func:`_check_opcodes`), then an
    unpickler whose ``find_class`` and ``persistent_load`` always raise builds the value,
    which is then checked for self-reference, depth, expanded size and giant integers.

    Raises:
        UnsafePickle: the pickle refers to a global (a datetime, a class, a function…), calls
            anything, refers outside itself, or is built to make CPython allocate.
        ValueError: the bytes are not a whole pickle of protocol 0-5; or they are over
            ``MAX_INFLATED_BYTES``, ``MAX_ITEMS`` or ``MAX_EXPANDED``; or the value nests
            deeper than ``safejson.MAX_DEPTH`` or holds an integer over ``MAX_INT_BITS``.
            The message reads after "the pickle".
    """
    if len(raw) > MAX_INFLATED_BYTES:
        raise _Refused(f"is {len(raw):,} bytes, over the {MAX_INFLATED_BYTES:,}-byte cap")
    try:
        _check_opcodes(raw)
        value = _PlainUnpickler(io.BytesIO(raw)).load()
    except _Refused:  # UnsafePickle is one too
        raise
    except Exception as exc:  # genops and the unpickler raise many types on hostile input
        raise ValueError(f"is not a whole pickle ({type(exc).__name__}: {exc})"[:300]) from None
    _check_shape(value)
    return value


_JSON_START = re.compile(rb"[ \t\r\n]*[\[{]")
_JSON_NAME = re.compile(rb'[ \t\r\n]*\[[ \t\r\n]*"')
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


def _loads_json(text: bytes) -> Any:
    """safejson's decoding, refused past ``MAX_ITEMS`` values (NaN is refused too)."""
    if _json_items(text) > MAX_ITEMS:
        raise _Refused(f"holds more than {MAX_ITEMS:,} values")
    return safejson.loads(text)


def _clean_name(name: str) -> str:
    """A function name capped, without the lone surrogates no page can print."""
    return name[:MAX_NAME_CHARS].encode("utf-8", "replace").decode("utf-8")


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
            if op.name not in _PUT_OPS and op.name not in ("PROTO", "FRAME")
        )
        first, (kind, name), after = next(ops), next(ops), next(ops, ("STOP", None))
        if first[0] != "MARK" or kind not in _STRING_OPS or not isinstance(name, str):
            return None
        if after[0] in _STRING_OPS and next(ops, ("STOP", None))[0] == "STACK_GLOBAL":
            return None
        return _clean_name(name)
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
    return _clean_name(name)


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
        func_name=_clean_name(name) if isinstance(name, str) else None,
        args=list(args) if isinstance(args, list | tuple) else None,
        kwargs=kwargs if named else None,
        serializer=serializer,
        problem="; ".join(problems) or None,
    )


def _json_call(data: bytes) -> DecodedCall:
    try:
        value = _loads_json(data)
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
    inflated, state = _inflate(head, limit)
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


def _decode_value(raw: bytes) -> tuple[Any, str, str | None]:
    if not raw:
        return None, "unknown", "the value is empty"
    if len(raw) > MAX_INPUT_BYTES:
        problem = f"{len(raw):,} bytes, over the {MAX_INPUT_BYTES:,}-byte cap: not decoded"
        return None, "unknown", problem
    try:
        return _loads_json(raw), "json", None
    except ValueError as exc:
        json_problem = str(exc)
    try:
        return restricted_loads(raw), "pickle", None
    except ValueError as exc:
        if isinstance(exc, _Refused) or raw[:1] == b"\x80":  # a pickle, refused
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


def _exc_text(packed: bytes, plain_is_fine: bool, limit: int) -> tuple[str | None, str | None]:
    """Inflated (capped) exception text: (text, problem); None for no text."""
    data, state = _inflate(packed, limit)
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
    yield _clean_name(call.func_name) if call.func_name else "?"
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
