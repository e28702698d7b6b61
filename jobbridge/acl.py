"""Redis ACL users that give jobbridge exactly what it needs: least privilege in Redis itself.

A viewer user can run only the reads a dashboard makes, on the source's keys and jobbridge's
own; an operator user can also run jobbridge's action scripts, and, inside them, only the
commands those scripts use. Redis checks the commands a script runs against the user too, so a
viewer cannot act even through EVAL, whatever jobbridge's own ``read_only`` setting says.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from jobbridge.adapters.base import glob_escape
from jobbridge.config import Role, SourceConfig, redact_url

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
    "llen",
    "lindex",
    "lrange",
    "zcard",
    "zcount",
    "zrange",
    "zrevrange",
    "zscore",
)
#: how redis-py runs a registered script (EVALSHA, loading it on NOSCRIPT)
SCRIPT_COMMANDS = ("evalsha", "eval", "script|load", "script|exists")
#: what jobbridge's action scripts run (jobbridge/adapters/lua/*.lua)
SCRIPT_WRITES = ("set", "del", "lpush", "lrem", "ltrim", "lpos", "zrem")


def key_patterns(sources: Sequence[SourceConfig]) -> list[str]:
    """ACL key patterns (``~pattern``) for these sources' keys and jobbridge's own."""
    patterns: list[str] = []
    for source in sources:
        prefix = source.effective_key_prefix
        mine = f"~{glob_escape(prefix)}:*" if prefix else "~*"
        ours = f"~{glob_escape(source.jobbridge_prefix)}*"
        patterns += [p for p in (mine, ours) if p not in patterns]
    return patterns


def acl_rules(sources: Sequence[SourceConfig], role: Role) -> list[str]:
    """The rules of an ACL SETUSER for a jobbridge user of ``role`` over these sources."""
    commands = list(READ_COMMANDS)
    if role == "operator":
        commands += [*SCRIPT_COMMANDS, *SCRIPT_WRITES]
    return [
        "resetkeys",
        *key_patterns(sources),
        "resetchannels",
        "-@all",
        *(f"+{command}" for command in commands),
    ]


def acl_setuser(user: str, sources: Sequence[SourceConfig], role: Role) -> str:
    """An ``ACL SETUSER`` line to paste into redis-cli; the password is for you to set."""
    return " ".join(["ACL SETUSER", user, "on", ">CHANGE-ME", *acl_rules(sources, role)])


def redis_server_of(url: str) -> str:
    """The server a Redis URL names, without credentials or database: where ACL users live."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return redact_url(f"unix://{parts.path}")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
