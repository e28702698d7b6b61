"""The Lua scripts of every action, read once from package files (``<system>/lua/<action>.lua``
and the shared prelude and ``any_*.lua`` in ``adapters/lua/``; docs/plugins.md §4), bound to
each adapter's client; redis-py's ``Script`` reloads one after a NOSCRIPT.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

#: the package whose ``lua/`` folder holds the prelude and the scripts every system binds
SHARED_PACKAGE = "jobbridge.adapters"
#: the file stem prefix of scripts every system binds (``any_refuse`` -> "refuse")
SHARED_PREFIX = "any_"


@functools.cache
def files(package: str = SHARED_PACKAGE) -> dict[str, str]:
    """File stem -> file text of every ``lua/*.lua`` of a package, as shipped."""
    folder = resources.files(package) / "lua"
    return {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua")
    }


def source(package: str, stem: str) -> str:
    """The Lua that runs for one file: the shared prelude, then the file."""
    return files()["_prelude"] + "\n" + files(package)[stem]


@dataclass(frozen=True, slots=True)
class BoundScripts:
    """The scripts of one system, registered on one client."""

    scripts: dict[str, AsyncScript]

    def __getitem__(self, action: str) -> AsyncScript:
        return self.scripts[action]


def bind(redis: Redis, package: str, skip: tuple[str, ...] = ()) -> BoundScripts:
    """Register the ``any_*.lua`` scripts and every ``lua/*.lua`` of a system's package on a
    client, keyed by the action name (the file stem, without ``any_``). Files named in
    ``skip`` are not actions (a system's own background scripts)."""
    bound: dict[str, AsyncScript] = {}
    for stem in files():
        if stem.startswith(SHARED_PREFIX):
            bound[stem.removeprefix(SHARED_PREFIX)] = redis.register_script(
                source(SHARED_PACKAGE, stem)
            )
    for stem in files(package):
        if stem not in skip:
            bound[stem] = redis.register_script(source(package, stem))
    return BoundScripts(bound)
