"""Decoding JSON that an attacker may have written, without crashing on it.

Everything jobbridge reads from Redis is hostile input: job records, history entries, and its
own lifecycle and audit entries too, since anyone who can write to Redis can write those.
``loads`` turns every way such text can fail into one exception, :class:`JSONError`:

* bytes that are not UTF-8, or escaped lone surrogates (``"\\ud800"``), which no UTF-8 output
  can carry;
* ``NaN`` / ``Infinity`` constants, which JSON does not have;
* nesting deeper than :data:`MAX_DEPTH` levels. serde_json, which Autumn decodes with, starts
  with a depth budget of 128 and refuses the container that uses its last unit, so 127 levels
  is the most it reads; Python's own decoder recurses and raises ``RecursionError`` near
  1,000, and every later step that walks the value (encoding it for a page) would recurse too.

Numbers too large for a float (``1e999``) decode to ``inf`` in Python but are refused by
serde_json: ``loads`` keeps the value and names the number in :attr:`Loaded.problems`, so a
record holding one can be shown but is never offered for a retry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the deepest nesting serde_json's default recursion limit (128) lets through: deeper
#: documents are refused, as Autumn refuses them
MAX_DEPTH = 127

PairsHook = Callable[[list[tuple[str, Any]]], Any]


class JSONError(ValueError):
    """The text is not JSON that jobbridge will decode; the message says why."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """A decoded document and what serde_json would still refuse in it."""

    value: Any
    #: numbers out of a float's range ("1e999"), as serde_json refuses them
    problems: tuple[str, ...] = ()


def _reject_constant(name: str) -> Any:
    raise JSONError(f"non-standard JSON constant {name}")


def loads_checked(raw: bytes | str, *, pairs_hook: PairsHook | None = None) -> Loaded:
    """Decode hostile JSON text.

    Args:
        raw: the stored bytes (strict UTF-8) or text.
        pairs_hook: as ``json.loads``'s ``object_pairs_hook``.

    Raises:
        JSONError: not UTF-8, not JSON, a lone surrogate, NaN / Infinity, or too deep.
    """
    problems: list[str] = []

    def parse_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value) and len(problems) < 3:
            problems.append(f"number {literal[:40]} is out of range")
        return value

    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=parse_float,
            object_pairs_hook=pairs_hook,
        )
    except RecursionError:
        raise JSONError(f"nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise JSONError("not valid UTF-8") from None
    except JSONError:
        raise
    except ValueError as exc:
        raise JSONError(str(exc)[:120] or "not JSON") from None
    if "\\u" in text and _has_surrogate(value):
        raise JSONError("holds an escaped lone surrogate")
    if _brackets(text) > MAX_DEPTH and depth_exceeds(value, MAX_DEPTH):
        raise JSONError(f"nested deeper than {MAX_DEPTH} levels")
    return Loaded(value, tuple(problems))


def loads(raw: bytes | str, *, pairs_hook: PairsHook | None = None) -> Any:
    """``loads_checked(...).value``: for text where out-of-range numbers do not matter."""
    return loads_checked(raw, pairs_hook=pairs_hook).value


def _brackets(text: str) -> int:
    """How many containers the text opens at most (brackets inside strings count too)."""
    return text.count("[") + text.count("{")


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` levels (walked without recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


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
