"""Redis ACL users that give jobbridge exactly what it needs (docs/operations.md, Least privilege
in Redis): a viewer runs only the dashboard's reads, an operator also the action scripts and
their commands. Each system adds its own grants (:class:`jobbridge.adapters.registry.AclGrants`).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from jobbridge.adapters import SystemSpec, systems
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
#: what jobbridge's scripts run: the actions (jobbridge/adapters/**/lua/*.lua), the lease and
#: the chart series' and census's writes (jobbridge/lua, jobbridge/series/lua, census/lua)
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
    # the chart series' writes (jobbridge/series/lua/write.lua) on jobbridge's own keys
    "hincrby",
    "hsetnx",
    "zremrangebyscore",
)


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
        selectors: the server has key selectors (Redis 7+): a system whose viewer needs its
            own line (Celery: reads every key, writes only jobbridge's own keys of the
            source) may use them.

    Returns:
        Key patterns, then ``-@all``, then each granted command (then, for a system's own
        viewer line on Redis 7, one selector, ``(...)``, a single argument).
    """
    grouped = _by_system(sources)
    for spec, own in grouped:
        if role == "viewer" and spec.acl.viewer_rules is not None:
            channels = channel_patterns(sources, "viewer")
            return spec.acl.viewer_rules(own, READ_COMMANDS, channels, selectors)
    commands = list(READ_COMMANDS)
    for spec, _ in grouped:
        commands += [c for c in spec.acl.commands if c not in commands]
    if role == "operator":
        commands += [c for c in (*SCRIPT_COMMANDS, *SCRIPT_WRITES) if c not in commands]
    channels = channel_patterns(sources, role)
    return [
        *key_patterns(sources),
        *channels,
        "-@all",
        *(f"+{command}" for command in commands),
    ]


def _by_system(sources: Sequence[SourceConfig]) -> list[tuple[SystemSpec, list[SourceConfig]]]:
    """The registered systems of these sources (in the registry's order), with their sources."""
    return [
        (spec, [s for s in sources if s.system == spec.name])
        for spec in systems().values()
        if any(s.system == spec.name for s in sources)
    ]


def viewer_notes(sources: Sequence[SourceConfig], role: Role, *, selectors: bool) -> list[str]:
    """Comment lines saying plainly what a viewer line allows (none for other lines)."""
    if role != "viewer":
        return []
    for spec, own in _by_system(sources):
        if spec.acl.viewer_rules is not None:
            notes = spec.acl.viewer_notes
            return notes(own, selectors) if notes is not None else []
    return []


def channel_patterns(sources: Sequence[SourceConfig], role: Role = "operator") -> list[str]:
    """ACL channel rules each source's system asks for (RQ's worker command channels for an
    operator's stop action; Celery's result, event and remote-control channels, which its
    background work follows whatever the role).

    They start with ``resetchannels``: Redis 6.2 gives a new user every channel by default
    and refuses a pattern after that, and the user should publish nowhere else anyway.
    """
    patterns: list[str] = []
    for source in sources:
        spec = systems().get(source.system)
        wanted = spec.acl.channels(source, role) if spec and spec.acl.channels else []
        patterns += [f"&{p}" for p in wanted if f"&{p}" not in patterns]
    return ["resetchannels", *patterns] if patterns else []


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
