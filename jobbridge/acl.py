"""Redis ACL users that give jobbridge exactly what it needs: least privilege in Redis itself.

A viewer user can run only the reads a dashboard makes, on the source's keys and jobbridge's
own. An operator user can also run jobbridge's action scripts, and is granted the commands
those scripts run (Redis checks a script's commands against the user running it, so they must
be granted as commands too; keys stay limited to the same patterns). A viewer cannot act even
through a script, whatever jobbridge's own ``read_only`` setting says.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from jobbridge.adapters.base import glob_escape
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
)


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
    return patterns


def acl_rules(sources: Sequence[SourceConfig], role: Role) -> list[str]:
    """The rules of an ACL SETUSER for a jobbridge user over these sources.

    Args:
        sources: the sources one Redis server holds.
        role: viewer (the dashboard's reads) or operator (also the action scripts).

    Returns:
        Key patterns, then ``-@all``, then each granted command.
    """
    commands = list(READ_COMMANDS)
    channels: list[str] = []
    if role == "operator":
        commands += [*SCRIPT_COMMANDS, *SCRIPT_WRITES]
        channels = channel_patterns(sources)
    return [
        *key_patterns(sources),
        *channels,
        "-@all",
        *(f"+{command}" for command in commands),
    ]


def channel_patterns(sources: Sequence[SourceConfig]) -> list[str]:
    """ACL channel rules of an operator: RQ's worker command channels (the stop action).

    They start with ``resetchannels``: Redis 6.2 gives a new user every channel by default
    and refuses a pattern after that, and the user should publish nowhere else anyway.
    """
    patterns: list[str] = []
    for source in sources:
        if source.system == "rq":
            pattern = f"&{glob_escape(source.effective_key_prefix)}:pubsub:*"
            if pattern not in patterns:
                patterns.append(pattern)
    return ["resetchannels", *patterns] if patterns else []


def acl_setuser(user: str, sources: Sequence[SourceConfig], role: Role) -> str:
    """An ``ACL SETUSER`` line to paste into redis-cli; the password is for you to set.

    It starts with ``reset``, so whatever the user could do before (other passwords, keys,
    selectors) is gone: running it again gives the same user.
    """
    rules = acl_rules(sources, role)
    return " ".join(["ACL SETUSER", user, "reset", "on", ">CHANGE-ME", *rules])


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
