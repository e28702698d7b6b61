"""Bounded probes a system's detection runs on a Redis (``serve --redis URL``, ``doctor``).

Run once at start-up, never per request. A least-privilege user (``jobbridge acl``) may not
read every probed key: NOPERM there means "not ours to look at", not "Redis is unusable".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis.exceptions

from jobbridge.adapters.fields import key_text

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Keys looked at by one detection SCAN at the most.
DETECT_SCAN_LIMIT = 20_000
#: TYPE checks per round trip when detection confirms keys found by name.
_TYPE_BATCH = 1000


async def probe(client: Redis, *keys: str) -> list[bool]:
    """Whether each key exists, in one round trip; a key we may not read does not."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return [bool(unless_refused(r)) for r in await pipe.execute(raise_on_error=False)]


async def any_key(client: Redis, pattern: str) -> bool:
    """Whether a key we may read matches (a bounded SCAN). SCAN lists names whatever the
    user's key patterns, so a key found is probed too; a user refused SCAN sees none."""
    cursor, scanned = 0, 0
    while True:
        try:
            cursor, keys = await client.scan(cursor, match=pattern, count=1000)
        except redis.exceptions.NoPermissionError:
            return False
        scanned += 1000
        if keys and any(await probe(client, *map(key_text, keys[:_TYPE_BATCH]))):
            return True
        if cursor == 0 or scanned >= DETECT_SCAN_LIMIT:
            return False


def unless_refused(reply: object) -> object:
    """A probe's reply; None where ACLs refused it; any other error is raised."""
    if isinstance(reply, redis.exceptions.NoPermissionError):
        return None
    if isinstance(reply, Exception):
        raise reply
    return reply


async def zsets(client: Redis, keys: Sequence[str]) -> dict[str, bool]:
    """Whether each key holds a zset (a key we may not read does not), a batch per round trip."""
    result: dict[str, bool] = {}
    for start in range(0, len(keys), _TYPE_BATCH):
        batch = keys[start : start + _TYPE_BATCH]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.type(key)
        replies = await pipe.execute(raise_on_error=False)
        for key, reply in zip(batch, replies, strict=True):
            result[key] = unless_refused(reply) in (b"zset", "zset")
    return result
