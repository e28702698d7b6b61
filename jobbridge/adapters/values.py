"""Reading values of hostile size and type from Redis: what every adapter needs.

Strings are read in capped steps and pipeline replies one by one: a key of another type
(``WRONGTYPE``) becomes a problem named in words, any other error still makes the source
unavailable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.exceptions

from jobbridge.adapters.fields import key_text

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Largest value read whole (for a job page or an action); bigger ones are not read whole.
MAX_VALUE_BYTES = 64 * 1024 * 1024

#: what a row says of a string key (a record, a meta, a lifecycle entry) of another type
NOT_A_STRING = "holds another type than a string: it cannot be read"

_TYPE_WORDS = {
    "list": "a list",
    "zset": "a sorted set",
    "string": "a string",
    "hash": "a hash",
    "set": "a set",
    "stream": "a stream",
    "none": "gone",
}


@dataclass(frozen=True, slots=True)
class Unread:
    """A value that was not read: why, in words for the row."""

    reason: str
    #: the key holds another type: no action can use it either (the row offers none)
    wrong_type: bool = False


#: a string value as read: its bytes, None when missing, or why it was not read
Value = bytes | None | Unread


def megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


def is_wrongtype(reply: object) -> bool:
    return isinstance(reply, redis.exceptions.ResponseError) and str(reply).startswith("WRONGTYPE")


def ok(reply: object) -> Any:
    """A pipeline reply, with any error but WRONGTYPE raised (the source is then down)."""
    if isinstance(reply, Exception) and not is_wrongtype(reply):
        raise reply
    return reply


async def read_strings(client: Redis, keys: Sequence[str], first: int, budget: int) -> list[Value]:
    """String values: one ``GETRANGE`` of the first ``first`` bytes of each; a value longer
    than that is read whole while ``budget`` (bytes) lasts, else it is ``Unread``. A key of
    another type is ``Unread`` too; a missing (or empty) key is None."""
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.getrange(key, 0, first - 1)
    out: list[Value] = []
    for reply in await pipe.execute(raise_on_error=False):
        value = ok(reply)
        if is_wrongtype(value):
            out.append(Unread("its key holds another type than a string", wrong_type=True))
        else:
            out.append(value or None)
    longer = [i for i, value in enumerate(out) if isinstance(value, bytes) and len(value) >= first]
    if longer:
        await _read_longer(client, keys, out, longer, budget)
    return out


async def _read_longer(
    client: Redis, keys: Sequence[str], out: list[Value], longer: list[int], budget: int
) -> None:
    """Read whole the values whose first bytes filled the first read, within budget."""
    pipe = client.pipeline(transaction=False)
    for index in longer:
        pipe.strlen(keys[index])
    sizes = [ok(r) for r in await pipe.execute(raise_on_error=False)]
    fetch = []
    for index, size in zip(longer, sizes, strict=True):
        head = out[index]
        if is_wrongtype(size):
            out[index] = Unread("it changed while it was read", wrong_type=True)
        elif isinstance(head, bytes) and int(size) <= len(head):
            continue  # exactly ``first`` bytes long: already whole
        elif int(size) <= min(budget, MAX_VALUE_BYTES):
            budget -= int(size)
            fetch.append(index)
        elif int(size) <= MAX_VALUE_BYTES:
            out[index] = Unread(
                f"it is {megabytes(int(size))}, too large to read here; open the job to see it"
            )
        else:
            out[index] = Unread(
                f"it is {megabytes(int(size))}, larger than jobbridge reads "
                f"({megabytes(MAX_VALUE_BYTES)})"
            )
    if fetch:
        pipe = client.pipeline(transaction=False)
        for index in fetch:
            pipe.get(keys[index])
        for index, value in zip(fetch, await pipe.execute(raise_on_error=False), strict=True):
            value = ok(value)
            changed = is_wrongtype(value) or value is None
            out[index] = Unread("it changed while it was read") if changed else value


async def type_problems(client: Redis, broken: Mapping[str, str]) -> list[str]:
    """A sentence for each key that does not hold the type expected of it.

    Args:
        client: the source's client.
        broken: key -> the type it should hold ("list", "zset", "string", ...).
    """
    pipe = client.pipeline(transaction=False)
    for key in broken:
        pipe.type(key)
    kinds = await pipe.execute()
    problems = []
    for (key, expected), kind in zip(broken.items(), kinds, strict=True):
        actual = key_text(kind)
        problems.append(
            f"key {key} is {_TYPE_WORDS.get(actual, actual)}, not "
            f"{_TYPE_WORDS.get(expected, expected)}: what it holds cannot be read"
        )
    return problems
