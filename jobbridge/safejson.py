"""Decoding JSON that an attacker may have written, without crashing on it.

Everything read from Redis is hostile, jobbridge's own lifecycle and audit entries included:
:func:`loads_checked` turns every way such text can fail into one :class:`JSONError` and
names what serde_json (Autumn's decoder) would still refuse.
"""

from __future__ import annotations

import json
import math
import re
import threading
from _json import scanstring
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the deepest nesting serde_json's default recursion limit (128) lets through: deeper
#: documents are refused, as Autumn refuses them
MAX_DEPTH = 127


class JSONError(ValueError):
    """The text is not JSON that jobbridge will decode; the message says why."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """A decoded document and what serde_json would still refuse in it."""

    value: Any
    #: numbers out of a float's range ("1e999"), as serde_json refuses them
    problems: tuple[str, ...] = ()
    #: keys the outermost object names more than once (with ``top_keys``)
    repeated: tuple[str, ...] = ()


def _reject_constant(name: str) -> Any:
    raise JSONError(f"non-standard JSON constant {name}")


class _Decoding(threading.local):
    """What the hooks of the decoders below note while one document is decoded."""

    #: numbers out of range, in words
    problems: list[str]
    #: the pairs of the object decoded last, when it named a key twice
    repeated_pairs: list[tuple[str, Any]] | None


_decoding = _Decoding()


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value) and len(_decoding.problems) < 3:
        _decoding.problems.append(f"number {literal[:40]} is out of range")
    return value


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(items)
    # Called innermost object first: after decoding, this holds the outermost one's.
    _decoding.repeated_pairs = items if len(value) != len(items) else None
    return value


#: objects through a hook: cheap while a document has few of them
_PAIRS_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_parse_float, object_pairs_hook=_pairs
)
#: objects built in C, for big documents (their own keys read by ``_decode_object``)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)
#: documents up to this many characters go through the hook when keys are to be checked
_HOOK_CHARS = 64 * 1024


def loads_checked(raw: bytes | str, *, top_keys: bool = False) -> Loaded:
    """Decode hostile JSON text.

    Refused: bytes that are not UTF-8 and escaped lone surrogates (``"\\ud800"``), which no
    UTF-8 output can carry; ``NaN`` / ``Infinity``, which JSON does not have; nesting deeper
    than :data:`MAX_DEPTH` (Python's decoder would recurse to ``RecursionError`` near 1,000, and
    so would every later walk over the value). A number too large for a float (``1e999``)
    decodes to ``inf`` but serde_json refuses it: it is kept and named in
    :attr:`Loaded.problems`, so a record holding one is shown but never offered for a retry.

    Args:
        raw: the stored bytes (strict UTF-8) or text.
        top_keys: when the document is an object, also list the keys it names more than once
            (Python keeps the last; serde_json refuses a struct field named twice).

    Raises:
        JSONError: not UTF-8, not JSON, a lone surrogate, NaN / Infinity, or too deep.
    """
    _decoding.problems = []
    _decoding.repeated_pairs = None
    repeated: tuple[str, ...] = ()
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if top_keys and len(text) <= _HOOK_CHARS:
            value = _PAIRS_DECODER.decode(text)
            if isinstance(value, dict) and _decoding.repeated_pairs is not None:
                repeated = _repeated(_decoding.repeated_pairs)
        elif top_keys:
            value, repeated = _decode_object(_DECODER, text)
        else:
            value = _DECODER.decode(text)
    except RecursionError:
        raise JSONError(f"nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise JSONError("not valid UTF-8") from None
    except JSONError:
        raise
    except (ValueError, StopIteration, IndexError) as exc:
        raise JSONError(str(exc)[:120] or "not JSON") from None
    if _SURROGATE_ESCAPE.search(text) and _has_surrogate(value):
        raise JSONError("holds an escaped lone surrogate")
    if too_deep(raw if isinstance(raw, bytes) else text.encode("utf-8", "surrogatepass")):
        raise JSONError(f"nested deeper than {MAX_DEPTH} levels")
    return Loaded(value, tuple(_decoding.problems), repeated)


def _repeated(pairs: list[tuple[str, Any]]) -> tuple[str, ...]:
    seen: set[str] = set()
    repeated: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    return tuple(repeated)


def loads(raw: bytes | str) -> Any:
    """``loads_checked(...).value``: for text where out-of-range numbers do not matter."""
    return loads_checked(raw).value


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SPACE = frozenset(" \t\n\r")


def _decode_object(decoder: json.JSONDecoder, text: str) -> tuple[Any, tuple[str, ...]]:
    """Decode a document; for an object, also the keys it names twice.

    The object's own keys are read here, its values by the C scanner, so this costs what
    ``json.loads`` costs (a hook called for every nested object would cost far more).
    """
    end = len(text)
    match_space = _WHITESPACE.match

    def skip(at: int) -> int:
        # Compact JSON (what serde writes) has no whitespace: skip the regex then.
        if at >= end or text[at] not in _SPACE:
            return at
        found = match_space(text, at)
        return at if found is None else found.end()

    # the C scanner JSONDecoder builds for itself, with its hooks
    scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once  # type: ignore[attr-defined]
    index = skip(0)
    if not text.startswith("{", index):
        return decoder.decode(text), ()
    pairs: list[tuple[str, Any]] = []
    index = skip(index + 1)
    if text.startswith("}", index):
        index += 1
    else:
        while True:
            if not text.startswith('"', index):
                raise JSONError(f"expecting a property name at char {index}")
            key, index = scanstring(text, index + 1)
            index = skip(index)
            if not text.startswith(":", index):
                raise JSONError(f"expecting ':' at char {index}")
            index = skip(index + 1)
            value, index = scan(text, index)
            pairs.append((key, value))
            index = skip(index)
            if text.startswith("}", index):
                index += 1
                break
            if not text.startswith(",", index):
                raise JSONError(f"expecting ',' or '}}' at char {index}")
            index = skip(index + 1)
    if skip(index) != end:
        raise JSONError(f"extra data at char {index}")
    return dict(pairs), _repeated(pairs)


#: an escaped surrogate ("\\ud800"); only then can a decoded string hold a lone one
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: every byte but brackets and quotes
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STRINGS = re.compile(rb'"[^"]*"')
_PAIRS = re.compile(rb"\[\]|\{\}|\[\}|\{\]")


def too_deep(text: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether valid JSON text nests containers deeper than ``limit``.

    Works on the text at C speed rather than walking the decoded value: escaped backslashes
    and quotes go, then everything but brackets and quotes, then strings; each pass of the
    last step removes the innermost bracket pairs, so brackets left after ``limit`` passes are
    nested deeper than that.
    """
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = _STRINGS.sub(b"", text.translate(None, _NOT_STRUCTURE))
    for _ in range(limit):
        skeleton, removed = _PAIRS.subn(b"", skeleton)
        if not skeleton:
            return False
        if not removed:
            break
    return bool(skeleton)


def _has_surrogate(value: Any) -> bool:
    """Whether any string (key or value) holds a lone surrogate."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
