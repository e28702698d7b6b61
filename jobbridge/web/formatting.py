"""Formatting helpers shared by templates (as Jinja filters) and the JSON API.

Everything here returns plain text; Jinja's autoescaping makes it safe HTML. These helpers
only make attacker-controlled text *readable*: control characters and bidirectional overrides,
which could disguise a job name or error, become visible replacement marks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jobbridge.text import age, clean, clean_block, show_time

#: Autumn's table cut: 79 characters and an ellipsis
ERROR_CUT = 80
#: characters of a full error shown inside a table row's <details>
TABLE_ERROR_CHARS = 4000


def iso_seconds(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cut(value: object, limit: int = ERROR_CUT) -> str:
    """Autumn's error cut: at most ``limit`` characters, ``limit - 1`` plus "…" when longer."""
    return clean(value, limit)


def is_cut(value: object, limit: int = ERROR_CUT) -> bool:
    return value is not None and len(str(value)) > limit


FILTERS: dict[str, Callable[..., Any]] = {
    "show_time": show_time,
    "iso_seconds": iso_seconds,
    "age": age,
    "clean": clean,
    "clean_block": clean_block,
    "cut": cut,
    "is_cut": is_cut,
}
