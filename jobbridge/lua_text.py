"""The text of a Lua script jobbridge ships outside the adapters (the lease, the chart series,
the census, bulk runs): ``<package>/lua/<name>.lua``. The adapters' action scripts have their
own loader, which prepends the shared prelude (jobbridge/adapters/scripts.py)."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def lua_text(package: str, name: str) -> str:
    """The text of ``<package>/lua/<name>.lua``, as shipped."""
    return (resources.files(package) / "lua" / f"{name}.lua").read_text("utf-8")
