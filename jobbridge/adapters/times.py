"""Numbers read from Redis as times and counts, whatever they hold.

``1e300``, ``inf``, NaN or a year past 9999 make ``datetime`` and ``int()`` raise: every stored
number is converted here, None for what is not a time or count in range, so a hostile value
makes a flagged row (:func:`with_problem`), never a 500.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobbridge.model import JobRecord

#: 9999-12-31T23:59:59Z: the last second a ``datetime`` holds (with room for a UTC offset)
MAX_EPOCH_S = 253_402_300_799
MAX_EPOCH_MS = MAX_EPOCH_S * 1000
#: a count above this is not one any system keeps (and is past what JSON readers hold exactly)
MAX_COUNT = 2**63 - 1


def finite(value: object) -> float | None:
    """A number (int, float, or its text as bytes/str) as a finite float; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, bytes | str):
        if len(value) > 64:
            return None
        try:
            value = float(value)
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past 1e308
        return None
    return number if math.isfinite(number) else None


def epoch_s(value: object) -> datetime | None:
    """Unix seconds (a score, or a number as text) as an aware UTC datetime; None for
    missing, non-numbers, ±inf, NaN, negatives and years past 9999."""
    seconds = finite(value)
    if seconds is None or not 0 <= seconds <= MAX_EPOCH_S:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


def epoch_ms(value: object) -> datetime | None:
    """Unix milliseconds as :func:`epoch_s` reads seconds."""
    ms = finite(value)
    if ms is None or not 0 <= ms <= MAX_EPOCH_MS:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def count(value: object, high: int = MAX_COUNT) -> int | None:
    """A whole number 0..high (an int, an integral float, or its text); None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= high else None
    number = finite(value)
    if number is None or not number.is_integer() or not 0 <= number <= high:
        return None
    return int(number)


def seconds(value: object) -> float | None:
    """A duration or age in seconds that text can show (finite, within datetime's range)."""
    number = finite(value)
    if number is None or abs(number) > MAX_EPOCH_S:
        return None
    return number


def with_problem(row: JobRecord, problem: str | None) -> JobRecord:
    """``row`` with ``problem`` added to the problems it already names (once)."""
    if not problem or (row.problem and problem in row.problem):
        return row
    return replace(row, problem=f"{row.problem}; {problem}" if row.problem else problem)
