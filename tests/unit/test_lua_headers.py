"""Every Lua script jobbridge ships opens with the header the project asks of a script: what
its KEYS and ARGV are and what it returns. (A file named ``_*.lua`` is no script: a piece
prepended to others, such as the actions' prelude.)"""

from __future__ import annotations

from pathlib import Path

import pytest

import jobbridge

LUA_FILES = sorted(
    p for p in Path(jobbridge.__file__).parent.rglob("*.lua") if not p.name.startswith("_")
)


def test_the_shipped_lua_files_are_found() -> None:
    names = {path.relative_to(Path(jobbridge.__file__).parent).as_posix() for path in LUA_FILES}
    assert {"lua/lease.lua", "series/lua/write.lua", "census/lua/read.lua"} <= names


@pytest.mark.parametrize("path", LUA_FILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_header_names_keys_argv_and_returns(path: Path) -> None:
    header = []
    for line in path.read_text("utf-8").splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    text = "\n".join(header)
    assert "KEYS" in text and "ARGV" in text and "Returns" in text, path
