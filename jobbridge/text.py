"""Untrusted text made readable, and durations made short: for the terminal and the web.

Control characters and bidirectional overrides, which could disguise a job name or error or
repaint a terminal, become visible replacement marks. Escaping for HTML is Jinja's job.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from markupsafe import Markup

#: shown as U+FFFD: C0 and C1 controls but tab and line feed (carriage return is handled per
#: function), zero-width and bidirectional controls, line and paragraph separators, the
#: byte-order mark, and lone surrogates (a JSON "\\ud800" escape decodes to one, and no UTF-8
#: output can carry it)
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069"
    "\ufeff\ud800-\udfff]"
)
_SURROGATES = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile("[\t\n\r]+")
#: how much more of a long value ``clean`` looks at than it shows: collapsed line breaks can
#: only shorten it
_CLEAN_SLACK = 8


def show_time(value: datetime | None) -> str:
    """Whole seconds in UTC, as Autumn's page shows times."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def oldest_age(seconds: float | None, at_least: bool) -> str:
    """An oldest-waiting age, "≥ 5m 3s" when it is a lower bound (the system records no
    enqueue time: jobbridge counts from when it first saw the job)."""
    return ("≥ " if at_least and seconds is not None else "") + age(seconds)


def age(seconds: float | None) -> str:
    """A short duration in at most two units: "12s", "5m 3s", "2h 5m", "3d 4h"; "—" if None."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m {total % 60}s"
    if total < 86400:
        return f"{total // 3600}h {total % 3600 // 60}m"
    return f"{total // 86400}d {total % 86400 // 3600}h"


def _mark(text: str, pattern: re.Pattern[str]) -> str:
    # One printable line (the usual case) has nothing to mark, and the check is C-fast.
    if text.isprintable():
        return text
    return pattern.sub("\ufffd", text)


def no_surrogates(value: object) -> object:
    """``value``, with any lone surrogate of a string replaced by "\ufffd" (else unchanged).

    Markup (a rendered macro) passes as it is: each value inside it came through here.
    """
    if not isinstance(value, str) or isinstance(value, Markup) or value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value)
    return value


def clean(value: object, limit: int | None = None) -> str:
    """One line of untrusted text: line breaks become spaces, other invisible and control
    characters are shown as "\ufffd"."""
    if value is None:
        return ""
    text = str(value)
    if limit is not None and len(text) > limit * _CLEAN_SLACK:
        text = text[: limit * _CLEAN_SLACK]
    text = _mark(_WHITESPACE.sub(" ", text), _INVISIBLE)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def clean_block(value: object, limit: int | None = None) -> str:
    """Multi-line untrusted text for a <pre>: newlines and tabs kept, other controls marked."""
    if value is None:
        return ""
    # A lone carriage return would let text overwrite its own line on a terminal.
    text = str(value).replace("\r\n", "\n").replace("\r", "\ufffd")
    total = len(text)
    if limit is not None and total > limit:
        text = text[:limit]
    text = _mark(text, _INVISIBLE)
    if limit is not None and total > limit:
        text += f"\n… [{total - limit} more characters]"
    return text


def clean_terminal(value: str) -> str:
    """Text bound for a terminal, as a last line of defence behind :func:`clean`: newlines and
    tabs kept, every other control character (carriage returns included) and every invisible
    character shown as "\ufffd"."""
    return _mark(value.replace("\r", "\ufffd"), _INVISIBLE)


def quoted(value: object, limit: int | None = None) -> str:
    """Untrusted text as a one-line Python literal: quoted, with its control and invisible
    characters as escapes (``'a\\x1bb'``), so the exact value can be read back."""
    return clean(repr(value), limit)


#: how much of an error text ``error_summary`` reads at either end: the exception line of a
#: traceback is at its end, a message's first line at its start; a megabyte is never split
_SUMMARY_READ = 8192
#: what starts a Python traceback (RQ's ``exc_info``, Celery's ``traceback``)
_TRACEBACK = "Traceback (most recent call last)"
#: lines at a traceback's end that are not the exception: caret markers (Python 3.11+)
_MARKER = re.compile(r"^[\^~]+$")


def _lines(text: str) -> list[str]:
    stripped = (line.strip() for line in text.replace("\r", "\n").split("\n"))
    return [line for line in stripped if line and not _MARKER.match(line)]


def error_summary(value: object, limit: int | None = None) -> str:
    """The line of an error text an operator reads first, cleaned as :func:`clean` and cut
    to ``limit``: for a traceback, its exception line (``ValueError: no such tenant``, the
    last line that is not a caret marker); for any other text, its first non-blank line.
    Pages and the CLI both summarise errors with it."""
    if value is None:
        return ""
    text = str(value)
    if _TRACEBACK in text[:_SUMMARY_READ]:
        lines = _lines(text[-_SUMMARY_READ:])
        if lines:
            return clean(lines[-1], limit)
    lines = _lines(text[:_SUMMARY_READ])
    return clean(lines[0] if lines else text.strip(), limit)
