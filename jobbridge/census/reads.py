"""The one read a census page makes of its ids' records (``lua/read.lua``): the start of
one or more fields of each record, in one command, and the helpers that split its reply.

Only a bounded prefix of each value comes back (``keep`` bytes): a census needs a job's name,
which every system stores near the start of its record, never its arguments.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from jobbridge.census.store import script

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: one record of the reply: whether its key exists (1, 0, -1: another type), then a
#: (value prefix or None, full length) pair per field
Head = tuple[int, tuple[tuple[bytes | None, int], ...]]


async def read_heads(
    client: Redis, keys: Sequence[str | bytes], fields: Sequence[str], keep: int
) -> list[Any]:
    """The flat reply of ``read.lua`` for ``keys`` (hashes with ``fields``, or strings when
    ``fields`` is empty): split it with :func:`heads`, where the page is counted."""
    if not keys:
        return []
    read = client.register_script(script("read"))
    reply = await read(keys=list(keys), args=[keep, *fields])
    return list(reply)


def heads(reply: Sequence[Any], width: int) -> Iterator[Head]:
    """Each record of a flat reply, ``width`` fields each (1 for strings)."""
    step = 1 + 2 * width
    for start in range(0, len(reply) - step + 1, step):
        exists = int(reply[start])
        pairs = tuple(
            (reply[start + 1 + 2 * i], int(reply[start + 2 + 2 * i])) for i in range(width)
        )
        yield exists, pairs
