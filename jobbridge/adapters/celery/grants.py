"""What a jobbridge Redis user needs for Celery sources (``jobbridge acl``, see jobbridge.acl).

A Celery source has no key prefix, and its background work writes jobbridge's own keys
whatever the role. On Redis 7 a viewer of it reads every key (``%R~*``) and writes only
jobbridge's keys of the source, through one key selector; Redis 6.2 has no selectors, so its
viewer line grants those writes on every key, and :func:`viewer_notes` says so. No viewer may
publish Celery's remote control (so it does not inspect workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from jobbridge.adapters.fields import glob_escape

if TYPE_CHECKING:
    from jobbridge.settings import Role, SourceConfig

#: what a Celery source reads besides the shared reads, whatever the role (the unacked sort,
#: the result index's pages and windows, the result and event subscriptions, the tail
#: sampler's pruning of its first-seen times)
CELERY_READS = ("hlen", "zmscore", "zrangebyscore", "psubscribe", "punsubscribe", "hkeys")
#: what a Celery source's background work writes on jobbridge's own keys of the source, even
#: as a viewer: the result index (its script, backfill lock and progress), the recorded
#: priorities and the first-seen times of the lists' oldest messages (tail_ages.py). A
#: Redis 7 viewer gets them through a key selector on those keys only.
CELERY_OWN_WRITES = (
    "evalsha",
    "script|load",
    "zadd",
    "zrem",
    "hset",
    "hsetnx",
    "hdel",
    "expire",
    "set",
    "del",
    "pexpire",
    "watch",
    "unwatch",
    "multi",
    "exec",
)
#: Celery sources, whatever the role: the reads of kombu's keys, and what jobbridge's own
#: background work runs (the result index keeps jobbridge's keys; the worker watch asks
#: workers for their stats as Celery's own inspect does, through a reply binding, the pidbox
#: channel and a reply list)
CELERY_COMMANDS = (*CELERY_READS, *CELERY_OWN_WRITES, "sadd", "srem", "blpop", "publish")


def own_celery_patterns(celery: Sequence[SourceConfig]) -> list[str]:
    """``~pattern`` rules of jobbridge's own keys of these Celery sources (index, recorded
    priorities, lifecycle: ``<jobbridge_prefix>celery:<global_keyprefix>:*``)."""
    from jobbridge.adapters.celery.keys import JobbridgeKeys

    patterns: list[str] = []
    for source in celery:
        base = JobbridgeKeys(source.effective_key_prefix, source.jobbridge_prefix).base
        pattern = f"~{glob_escape(base)}*"
        if pattern not in patterns:
            patterns.append(pattern)
    return patterns


def viewer_rules(
    celery: Sequence[SourceConfig],
    read_commands: Sequence[str],
    channels: Sequence[str],
    selectors: bool,
) -> list[str]:
    """A viewer of a server with a Celery source. Celery's keys have no common prefix, so
    the reads cover every key; its background work writes jobbridge's own keys. On Redis 7
    the root permissions read (``%R~*``) and one selector holds the writes, on those keys
    only; Redis 6.2 cannot tell them apart (see :func:`viewer_notes`). Neither gets the
    worker inspection's writes or PUBLISH on Celery's remote-control channel: a publisher
    there can revoke tasks or shut workers down."""
    commands = [*read_commands, *(c for c in CELERY_READS if c not in read_commands)]
    if not selectors:
        writes = [c for c in CELERY_OWN_WRITES if c not in commands]
        return ["~*", *channels, "-@all", *(f"+{c}" for c in (*commands, *writes))]
    selector = [
        *own_celery_patterns(celery),
        "resetchannels",
        "-@all",
        *(f"+{c}" for c in CELERY_OWN_WRITES),
    ]
    return [
        "%R~*",
        *channels,
        "-@all",
        *(f"+{c}" for c in commands),
        "(" + " ".join(selector) + ")",
    ]


def viewer_notes(celery: Sequence[SourceConfig], selectors: bool) -> list[str]:
    """Comment lines saying plainly what a Celery viewer line allows."""
    own = " ".join(p[1:] for p in own_celery_patterns(celery))
    tail = (
        "It cannot publish Celery remote-control commands, so it does not inspect workers: "
        "the workers panel comes from worker events (celery worker -E)."
    )
    if selectors:
        return [
            f"# Redis 7 key selectors: this viewer reads every key and writes only {own} "
            "(jobbridge's result index, recorded priorities and first-seen times), through "
            "the selector in "
            f"parentheses; SET, LPUSH, DEL... on Celery's keys answer NOPERM. {tail}"
        ]
    plumbing = ("evalsha", "script|load", "watch", "unwatch", "multi", "exec")
    writes = ", ".join(c.upper() for c in CELERY_OWN_WRITES if c not in plumbing)
    return [
        "# Redis 6.2 has no key selectors: this viewer line allows "
        f"{writes} and scripts (EVALSHA) on EVERY key (~*), Celery's included, because "
        f"jobbridge's result index writes {own} and Celery's keys have no prefix to tell "
        "them apart. jobbridge itself writes only its own keys as a viewer, but the user "
        "could do more: use Redis 7 for a viewer that cannot write Celery's keys. " + tail
    ]


def channels(source: SourceConfig, role: Role) -> list[str]:
    """Celery's result channels, event channels and (operators) remote-control channel: the
    result index and the worker watch follow them, whatever the role."""
    from jobbridge.adapters.celery.control import events_pattern, pidbox_channel
    from jobbridge.adapters.celery.keys import PRIORITY_STEPS, CeleryKeys

    prefix = source.effective_key_prefix
    db = _db_of(source.redis_url)
    steps = source.priority_steps or PRIORITY_STEPS
    keys = CeleryKeys(prefix, source.sep, steps, source.result_key_prefix)
    return [
        glob_escape(keys.task_meta_prefix) + "*",
        events_pattern(prefix, db),
        # Redis matches a PSUBSCRIBE pattern against the grants as it is written: the worker
        # watch's and the task event feed's own patterns must be granted themselves
        events_pattern(prefix, db, "worker"),
        events_pattern(prefix, db, "task"),
        # Celery's remote control (the worker inspection, revoke): operators only
        *([glob_escape(pidbox_channel(prefix, db))] if role == "operator" else []),
    ]


def _db_of(url: str) -> int:
    """The database number a Redis URL selects (pub/sub channels of kombu name it)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    for item in parts.query.split("&"):
        if item.startswith("db="):
            path = item[3:]
    return int(path) if path.isdigit() else 0
