"""Terminal output never carries control characters from job data."""

from __future__ import annotations

from jobbridge.render import clean, clean_block, table


def test_clean_replaces_terminal_escapes() -> None:
    hostile = "evil\x1b[2J\x1b]0;title\x07name\u202e"
    out = clean(hostile)
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert out.startswith("evil?[2J")


def test_clean_cuts_long_text() -> None:
    assert clean("abcdef", 4) == "abc…"
    assert clean(None) == ""


def test_clean_block_keeps_lines() -> None:
    assert clean_block("a\n\x1bb\tc") == "a\n?b    c"


def test_table_aligns_columns() -> None:
    out = table(["A", "BB"], [["xxx", "y"], ["z", "wwww"]])
    assert out.splitlines() == ["A    BB", "xxx  y", "z    wwww"]
