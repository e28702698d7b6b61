"""``doctor``'s checks of where a Celery source's results are and what they hold.

jobbridge reads task metas (``celery-task-meta-<id>``) from the broker's database unless
``result_backend_url`` names another; an app whose ``result_backend`` is another database of
the same server leaves the broker's without any, and jobbridge shows no results. Metas
written without ``result_extended`` lack the task's name and arguments. Bounded probes only:
a SCAN of at most ``SCAN_LIMIT`` keys per database, in the non-empty databases ``INFO
keyspace`` lists (``MAX_DATABASES`` at most), and ``SAMPLE`` metas read.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio
import redis.exceptions

from jobbridge.adapters.celery.keys import TASK_META_PREFIX, result_keyprefix
from jobbridge.adapters.fields import glob_escape, key_text
from jobbridge.adapters.values import ok
from jobbridge.redis_urls import redact_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.settings import SourceConfig

#: Keys one database's SCAN looks at, at the most.
SCAN_LIMIT = 20_000
#: Other databases looked in, at the most.
MAX_DATABASES = 16
#: Metas read to see whether they are extended, and bytes of one read at the most.
SAMPLE = 20
_MAX_META_BYTES = 64 * 1024
_DB_LINE = re.compile(r"^db(\d+)$")


def meta_pattern(config: SourceConfig) -> str:
    """The SCAN pattern of the source's task metas."""
    return glob_escape(result_keyprefix(config.result_key_prefix) + TASK_META_PREFIX) + "*"


async def some_keys(client: Redis, pattern: str, want: int = SAMPLE) -> list[str]:
    """Up to ``want`` keys matching ``pattern`` (a SCAN of at most ``SCAN_LIMIT`` keys)."""
    found: list[str] = []
    cursor, scanned = 0, 0
    while len(found) < want:
        cursor, keys = await client.scan(cursor, match=pattern, count=1000)
        scanned += 1000
        found += [key_text(k) for k in keys]
        if int(cursor) == 0 or scanned >= SCAN_LIMIT:
            break
    return found[:want]


async def check(config: SourceConfig, client: Redis, results: Redis | None) -> list[str]:
    """Doctor's lines on the source's results: where they are, whether they are extended."""
    url = config.result_backend_url or config.redis_url
    target = results or client
    pattern = meta_pattern(config)
    try:
        metas = await some_keys(target, pattern)
        if metas:
            return await _extended(target, metas)
        elsewhere = await _other_databases(target, url, pattern)
    except redis.exceptions.NoPermissionError:
        return ["results not checked: this Redis user may not SCAN, GET or INFO there"]
    if not elsewhere:
        return []
    shown = ", ".join(f'"{clean_url}"' for clean_url in elsewhere[:3])
    return [
        f"no task results in {redact_url(url)}, but another database of the same server holds "
        f"{pattern} keys: set the source's result_backend_url to the app's result_backend "
        f"({shown})"
    ]


async def _extended(client: Redis, metas: list[str]) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for key in metas:
        pipe.getrange(key, 0, _MAX_META_BYTES - 1)
    read: list[dict[str, object]] = []
    for reply in await pipe.execute(raise_on_error=False):
        try:
            meta = json.loads(ok(reply))
        except (ValueError, TypeError, UnicodeDecodeError, redis.exceptions.RedisError):
            continue  # not JSON (another serializer, cut short, or another type)
        if isinstance(meta, dict):
            read.append(meta)
    if read and not any("name" in meta for meta in read):
        return [
            "task results lack the task's name and arguments: set result_extended = True in "
            "the Celery app (rows then show the task and its call)"
        ]
    return []


async def _other_databases(client: Redis, url: str, pattern: str) -> list[str]:
    """The URLs (credentials hidden) of the server's other databases that hold metas."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return []  # sentinel:// and unix://: not probed
    current = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    keyspace = await client.info("keyspace")
    databases = sorted(
        int(m[1]) for name in keyspace if (m := _DB_LINE.match(str(name))) and int(m[1]) != current
    )[:MAX_DATABASES]
    found = []
    for db in databases:
        other_url = urlunsplit(parts._replace(path=f"/{db}", query=""))
        other = redis.asyncio.Redis.from_url(other_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            if await some_keys(other, pattern, want=1):
                found.append(redact_url(other_url))
        finally:
            await other.aclose()
    return found
