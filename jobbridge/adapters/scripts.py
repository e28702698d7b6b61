"""The Lua scripts of every action, read once from package files.

Each ``lua/<system>_<action>.lua`` holds one operation with a ``-- KEYS[n]:``, ``-- ARGV[n]:``
and ``-- Returns:`` header. Adapters bind them to their client once, in their constructor;
redis-py's ``Script`` then runs EVALSHA and reloads the script itself after a NOSCRIPT.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript


def _read_files() -> dict[str, str]:
    folder = resources.files("jobbridge.adapters") / "lua"
    return {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua")
    }


#: file stem ("autumn_retry", "_prelude") -> file text, as shipped
FILES: dict[str, str] = _read_files()

#: action script name ("autumn_retry") -> the Lua that runs: the shared prelude, then the file.
#: Files whose name starts with "_" are preludes, not scripts.
SOURCES: dict[str, str] = {
    name: FILES["_prelude"] + "\n" + text
    for name, text in FILES.items()
    if not name.startswith("_")
}


@dataclass(frozen=True, slots=True)
class BoundScripts:
    """The scripts of one system, registered on one client."""

    scripts: dict[str, AsyncScript]

    def __getitem__(self, action: str) -> AsyncScript:
        return self.scripts[action]


#: the file stem prefix of scripts every system binds (``any_refuse`` -> "refuse")
SHARED_PREFIX = "any_"


def bind(redis: Redis, system: str) -> BoundScripts:
    """Register every ``<system>_*.lua`` and ``any_*.lua`` on a client, keyed by the action
    name."""
    bound: dict[str, AsyncScript] = {}
    for prefix in (SHARED_PREFIX, f"{system}_"):
        for name, source in SOURCES.items():
            if name.startswith(prefix):
                bound[name.removeprefix(prefix)] = redis.register_script(source)
    return BoundScripts(bound)
