"""Redis ACL users that give jobbridge exactly what it needs: least privilege in Redis itself.

A viewer user can run only the reads a dashboard makes, on the source's keys and jobbridge's
own. An operator user can also run jobbridge's action scripts, and is granted the commands
those scripts run (Redis checks a script's commands against the user running it, so they must
be granted as commands too; keys stay limited to the same patterns). A viewer cannot act even
through a script, whatever jobbridge's own ``read_only`` setting says.

A Celery source has no key prefix, and its background work writes jobbridge's own keys
whatever the role. On Redis 7 a viewer of it reads every key (``%R~*``) and writes only
jobbridge's keys of the source, through one key selector; Redis 6.2 has no selectors, so its
viewer line grants those writes on every key, and :func:`viewer_notes` says so. No viewer may
publish Celery's remote control (so it does not inspect workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from jobbridge.adapters.fields import glob_escape
from jobbridge.redis_urls import is_sentinel_url, parse_sentinel_url, redact_url
from jobbridge.settings import Role, SourceConfig

#: commands of a dashboard read: counters, pages, job lookups, audit, background discovery,
#: and SELECT for a db number in the URL (redis-py ignores a refused CLIENT SETINFO)
READ_COMMANDS = (
    "ping",
    "select",
    "scan",
    "type",
    "exists",
    "get",
    "mget",
    "strlen",
    "getrange",
    "llen",
    "lindex",
    "lrange",
    "zcard",
    "zcount",
    "zrange",
    "zrevrange",
    "zscore",
    # RQ: job, worker and cron hashes, the worker and queue sets, the results streams
    "hget",
    "hmget",
    "hgetall",
    "hstrlen",
    "hexists",
    "scard",
    "smembers",
    "srandmember",
    "sscan",
    # actions: is a stored queue or worker one of the source's (jobbridge.adapters.keyguard)
    "sismember",
    "xrevrange",
)
#: how redis-py runs a registered script (EVALSHA, then SCRIPT LOAD on NOSCRIPT)
SCRIPT_COMMANDS = ("evalsha", "script|load")
#: what jobbridge's action scripts run (jobbridge/adapters/lua/*.lua)
SCRIPT_WRITES = (
    "set",
    "del",
    "lpush",
    "lrem",
    "ltrim",
    "lpos",
    "zrem",
    # RQ: status and new job hashes, registries, the queue list and set, stop-job commands
    "hset",
    "zadd",
    "rpush",
    "sadd",
    "expire",
    "publish",
    # Celery: out of jobbridge's failed index
    "hdel",
)


#: what a Celery source reads besides READ_COMMANDS, whatever the role (the unacked sort, the
#: result index's pages and windows, the result and event subscriptions)
CELERY_READS = ("hlen", "zmscore", "zrangebyscore", "psubscribe", "punsubscribe")
#: what a Celery source's background work writes on jobbridge's own keys of the source, even
#: as a viewer: the result index (its script, backfill lock and progress) and the recorded
#: priorities. A Redis 7 viewer gets them through a key selector on those keys only.
CELERY_OWN_WRITES = (
    "evalsha",
    "script|load",
    "zadd",
    "zrem",
    "hset",
    "hdel",
    "set",
    "del",
    "pexpire",
    "watch",
    "unwatch",
    "multi",
    "exec",
)

#: Celery sources, whatever the role: the reads of kombu's keys, and what jobbridge's own
#: background work runs (jobbridge/adapters/celery_index.py keeps the result index in
#: jobbridge's keys; jobbridge/adapters/celery_workers.py asks workers for their stats as
#: Celery's own inspect does, through a reply binding, the pidbox channel and a reply list)
CELERY_COMMANDS = (*CELERY_READS, *CELERY_OWN_WRITES, "sadd", "srem", "blpop", "publish")
#: the first Redis with ACL key selectors and read-only key patterns (``%R~``)
SELECTORS_SINCE = (7, 0)


#: what the replicas' shared state (jobbridge.web.shared_state) runs on its keys
STATE_COMMANDS = (
    "ping",
    "select",
    "exists",
    "set",
    "hset",
    "hgetall",
    "hdel",
    "zadd",
    "zcount",
    "zrevrange",
    "zremrangebyscore",
    "expire",
)


def state_acl_setuser(user: str, jobbridge_prefix: str) -> str:
    """The ``ACL SETUSER`` line of the user the replicas share their state as: the state's
    own keys (``<prefix>state:*``) and its commands, nothing else."""
    rules = [f"~{glob_escape(jobbridge_prefix)}state:*", "-@all"]
    rules += [f"+{command}" for command in STATE_COMMANDS]
    return " ".join(["ACL SETUSER", user, "reset", "on", ">CHANGE-ME", *rules])


def key_patterns(sources: Sequence[SourceConfig]) -> list[str]:
    """ACL key patterns for these sources' keys and jobbridge's own.

    Args:
        sources: the sources one Redis server holds.

    Returns:
        ``~pattern`` rules, prefixes glob-escaped, each once.
    """
    patterns: list[str] = []
    for source in sources:
        prefix = source.effective_key_prefix
        mine = f"~{glob_escape(prefix)}:*" if prefix else "~*"
        ours = f"~{glob_escape(source.jobbridge_prefix)}*"
        patterns += [p for p in (mine, ours) if p not in patterns]
    # A source without a prefix (Celery's default) has keys anywhere: "~*" covers the rest,
    # and Redis refuses a pattern after it.
    return ["~*"] if "~*" in patterns else patterns


def acl_rules(sources: Sequence[SourceConfig], role: Role, *, selectors: bool = True) -> list[str]:
    """The rules of an ACL SETUSER for a jobbridge user over these sources.

    Args:
        sources: the sources one Redis server holds.
        role: viewer (the dashboard's reads) or operator (also the action scripts).
        selectors: the server has key selectors (Redis 7+): a viewer of a Celery source
            then reads every key and writes only jobbridge's own keys of the source.

    Returns:
        Key patterns, then ``-@all``, then each granted command (then, for a Celery viewer
        on Redis 7, one selector, ``(...)``, a single argument).
    """
    celery = [s for s in sources if s.system == "celery"]
    if role == "viewer" and celery:
        return _celery_viewer_rules(sources, celery, selectors)
    commands = list(READ_COMMANDS)
    if any(source.system == "celery" for source in sources):
        commands += [c for c in CELERY_COMMANDS if c not in commands]
    if role == "operator":
        commands += [c for c in (*SCRIPT_COMMANDS, *SCRIPT_WRITES) if c not in commands]
    channels = channel_patterns(sources, role)
    return [
        *key_patterns(sources),
        *channels,
        "-@all",
        *(f"+{command}" for command in commands),
    ]


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


def _celery_viewer_rules(
    sources: Sequence[SourceConfig], celery: Sequence[SourceConfig], selectors: bool
) -> list[str]:
    """A viewer of a server with a Celery source. Celery's keys have no common prefix, so
    the reads cover every key; its background work writes jobbridge's own keys. On Redis 7
    the root permissions read (``%R~*``) and one selector holds the writes, on those keys
    only; Redis 6.2 cannot tell them apart (see :func:`viewer_notes`). Neither gets the
    worker inspection's writes or PUBLISH on Celery's remote-control channel: a publisher
    there can revoke tasks or shut workers down."""
    commands = [*READ_COMMANDS, *(c for c in CELERY_READS if c not in READ_COMMANDS)]
    channels = channel_patterns(sources, "viewer")
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


def viewer_notes(sources: Sequence[SourceConfig], role: Role, *, selectors: bool) -> list[str]:
    """Comment lines saying plainly what a viewer line allows (none for other lines)."""
    celery = [s for s in sources if s.system == "celery"]
    if role != "viewer" or not celery:
        return []
    own = " ".join(p[1:] for p in own_celery_patterns(celery))
    tail = (
        "It cannot publish Celery remote-control commands, so it does not inspect workers: "
        "the workers panel comes from worker events (celery worker -E)."
    )
    if selectors:
        return [
            f"# Redis 7 key selectors: this viewer reads every key and writes only {own} "
            "(jobbridge's result index and recorded priorities), through the selector in "
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


def channel_patterns(sources: Sequence[SourceConfig], role: Role = "operator") -> list[str]:
    """ACL channel rules: RQ's worker command channels (an operator's stop action); Celery's
    result channels, event channels and remote-control channel (any role: the result index
    and the worker watch follow them).

    They start with ``resetchannels``: Redis 6.2 gives a new user every channel by default
    and refuses a pattern after that, and the user should publish nowhere else anyway.
    """
    patterns: list[str] = []
    for source in sources:
        wanted: list[str] = []
        if source.system == "rq" and role == "operator":
            wanted = [f"{glob_escape(source.effective_key_prefix)}:pubsub:*"]
        elif source.system == "celery":
            wanted = _celery_channels(source, inspect=role == "operator")
        patterns += [f"&{p}" for p in wanted if f"&{p}" not in patterns]
    return ["resetchannels", *patterns] if patterns else []


def _celery_channels(source: SourceConfig, *, inspect: bool = True) -> list[str]:
    from jobbridge.adapters.celery.control import events_pattern, pidbox_channel
    from jobbridge.adapters.celery.keys import CeleryKeys

    prefix = source.effective_key_prefix
    db = _db_of(source.redis_url)
    keys = CeleryKeys(prefix, source.sep, source.priority_steps, source.result_key_prefix)
    return [
        glob_escape(keys.task_meta_prefix) + "*",
        events_pattern(prefix, db),
        # Redis matches a PSUBSCRIBE pattern against the grants as it is written: the worker
        # watch's and the task event feed's own patterns must be granted themselves
        events_pattern(prefix, db, "worker"),
        events_pattern(prefix, db, "task"),
        # Celery's remote control (the worker inspection, revoke): operators only
        *([glob_escape(pidbox_channel(prefix, db))] if inspect else []),
    ]


def _db_of(url: str) -> int:
    """The database number a Redis URL selects (pub/sub channels of kombu name it)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    for item in parts.query.split("&"):
        if item.startswith("db="):
            path = item[3:]
    return int(path) if path.isdigit() else 0


def acl_setuser(
    user: str, sources: Sequence[SourceConfig], role: Role, *, selectors: bool = True
) -> str:
    """An ``ACL SETUSER`` line to paste into redis-cli; the password is for you to set.

    It starts with ``reset``, so whatever the user could do before (other passwords, keys,
    selectors) is gone: running it again gives the same user.
    """
    rules = acl_rules(sources, role, selectors=selectors)
    return " ".join(["ACL SETUSER", user, "reset", "on", ">CHANGE-ME", *map(_cli_arg, rules)])


def _cli_arg(rule: str) -> str:
    """A rule as one redis-cli argument: a selector has spaces, so it is single-quoted
    (where redis-cli keeps backslashes, as glob escapes need)."""
    if " " not in rule:
        return rule
    return "'" + rule.replace("'", "\\'") + "'"


def selectors_supported(version: str) -> bool:
    """Whether a Redis ``redis_version`` (``INFO server``) has ACL key selectors.

    Raises:
        ValueError: not a version number.
    """
    parts = version.strip().split(".")
    major, minor = int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1] else 0
    return (major, minor) >= SELECTORS_SINCE


def redis_server_of(url: str, sentinel_master: str | None = None) -> str:
    """The server a Redis URL names, without credentials or database: where ACL users live.

    The default port is made explicit and ``localhost`` spelled 127.0.0.1, so those spellings
    of one server group together; other aliases (a second name, another address) cannot be
    told apart here.

    For a sentinel:// URL, every server of the master (``sentinel_master``, else the URL's
    ``?master=``): ACL users are not replicated, so the master and each replica need the
    user, and a replica that becomes master has it already.
    """
    if is_sentinel_url(url):
        parsed = parse_sentinel_url(url)
        master = sentinel_master or parsed.master
        sentinels = ", ".join(sorted({_host_port(h, p) for h, p in parsed.sentinels}))
        return (
            f"every server of Sentinel master {master!r} (the master and each replica;"
            f" sentinels {sentinels})"
        )
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return redact_url(f"unix://{parts.path}")
    return f"{parts.scheme}://{_host_port(parts.hostname, parts.port or 6379)}"


def _host_port(hostname: str | None, port: int) -> str:
    host = (hostname or "localhost").lower()
    host = "127.0.0.1" if host == "localhost" else host
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}"
