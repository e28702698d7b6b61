"""One page across several keys read end to end, newest first.

A page is a run of display offsets split over the keys in display order, one LRANGE per key,
so it costs O(page) whatever the depth (Autumn's newest is at index 0, RQ's at -1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Span(Generic[K]):
    """Display offsets ``first..last`` (0 = the newest entry) of one key of ``length``."""

    key: K
    first: int
    last: int
    length: int

    def lrange(self, *, newest_at_tail: bool) -> tuple[int, int]:
        """LRANGE start and stop for this span; read newest first, reverse when at the tail."""
        if newest_at_tail:
            return -(self.last + 1), -(self.first + 1)
        return self.first, self.last

    def place(self, offset: int) -> int:
        """Place in line (1 = taken next) of the entry at display offset ``first + offset``:
        the oldest entry is taken next, and it is shown last."""
        return self.length - (self.first + offset)


def spans(lengths: Sequence[tuple[K, int]], offset: int, need: int) -> list[Span[K]]:
    """The keys' parts that hold display offsets ``offset..offset+need-1`` of the keys
    joined end to end in the given order."""
    out: list[Span[K]] = []
    for key, length in lengths:
        if need <= 0:
            break
        if offset >= length:
            offset -= length
            continue
        take = min(need, length - offset)
        out.append(Span(key, offset, offset + take - 1, length))
        need -= take
        offset = 0
    return out
