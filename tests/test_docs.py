"""The docs stay true to the code: every command, config key and environment variable is
documented, every key, path and link the docs name exists, and the README stays short."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path

import pytest

from jobbridge import config
from jobbridge.cli import main
from jobbridge.config import ENV_CONFIG, ENV_REDIS_URL, ENV_SERVER, ENV_SESSION_SECRET
from jobbridge.errors import ConfigError
from jobbridge.settings import ProxyAuthConfig, ServerConfig

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
README_MAX_BYTES = 12 * 1024

#: The top-level entries of the repository a cited path may start with.
_TOP_LEVEL = tuple(p.name for p in ROOT.iterdir() if p.name not in {".git", ".venv"})
#: File name endings that make a backticked word a cited file.
_FILE_ENDINGS = (".py", ".lua", ".md", ".toml", ".html", ".css", ".js", ".yaml", ".yml")


def real_config_keys() -> Mapping[str, frozenset[str]]:
    """Every key the config loader accepts, by table (``sources`` for every ``[[sources]]``).

    The one place this test learns the keys: when per-system keys move into the registry of
    systems, point ``sources`` at it. :func:`test_real_config_keys_match_the_loader` checks
    the answer against what ``load_settings`` accepts, so a stale list fails there.
    """
    return {
        "server": frozenset(f.name for f in fields(ServerConfig)),
        "sources": frozenset(config.source_keys()),
        "auth": frozenset(
            ("tokens", "proxy", "session_secret", "session_max_age_s", "max_failed_sign_ins")
        ),
        "auth.tokens": frozenset(("name", "role", "token", "token_sha256")),
        "auth.proxy": frozenset(f.name for f in fields(ProxyAuthConfig)),
    }


#: A table of the config file, as its TOML header names it.
_HEADERS = {
    "server": "[server]",
    "sources": "[[sources]]",
    "auth": "[auth]",
    "auth.tokens": "[[auth.tokens]]",
    "auth.proxy": "[auth.proxy]",
}


def _real_qualified_keys() -> set[str]:
    return {f"{table}.{key}" for table, keys in real_config_keys().items() for key in keys}


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _toml_blocks(text: str) -> Iterator[str]:
    """The jobbridge config examples (not a plugin's pyproject.toml)."""
    for block in re.findall(r"^```toml\n(.*?)^```", text, flags=re.M | re.S):
        if not re.search(r"^\[(project|build-system|tool)\b", block, flags=re.M):
            yield block


def _inline_code(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", _prose(text))


def _toml_keys(block: str) -> Iterator[tuple[str, str]]:
    """(table, key) of every ``key = …`` line of a TOML example, commented-out ones included."""
    table = ""
    for line in block.splitlines():
        header = re.match(r"^\s*(\[\[?[^\]]+\]\]?)", line)
        if header:
            names = {v: k for k, v in _HEADERS.items()}
            assert header.group(1) in names, f"unknown table {header.group(1)}"
            table = names[header.group(1)]
            continue
        key = re.match(r"^\s*#?\s*([a-z_][a-z0-9_]*)\s*=\s", line)
        if key:
            yield table, key.group(1)


def _table_row_keys(text: str) -> Iterator[tuple[str, str]]:
    """(table, key) of every reference-table row of a page whose first cell is one key.

    A row names its key qualified (``auth.proxy.user_header``), or bare under a line that
    opens with the table's header in backticks (```[server]`:``).
    """
    table = ""
    for line in _prose(text).splitlines():
        context = re.match(r"^`(\[\[?[a-z.]+\]\]?)`", line)
        if context:
            table = {v: k for k, v in _HEADERS.items()}.get(context.group(1), "")
        row = re.match(r"^\|\s*`([a-z_][a-z0-9_.]*)`\s*\|", line)
        if row:
            name = row.group(1)
            parent, _, key = name.rpartition(".")
            parent = parent or table
            if parent in _HEADERS:
                yield parent, key


def _qualified_mentions(text: str) -> Iterator[tuple[str, str]]:
    """(table, key) of every ``[table] key`` or ``table.key`` written in backticks."""
    tables = "|".join(re.escape(t) for t in _HEADERS)
    for code in _inline_code(text):
        if code.endswith(_FILE_ENDINGS):
            continue
        match = re.fullmatch(rf"\[\[?({tables})\]\]? ([a-z_][a-z0-9_]*)", code) or re.fullmatch(
            rf"({tables})\.([a-z_][a-z0-9_]*)", code
        )
        if match:
            yield match.group(1), match.group(2)


def _named_keys(text: str) -> set[tuple[str, str]]:
    named = {pair for block in _toml_blocks(text) for pair in _toml_keys(block)}
    return named | set(_table_row_keys(text)) | set(_qualified_mentions(text))


def test_real_config_keys_match_the_loader(tmp_path: Path) -> None:
    # Each real key gets past the loader's unknown-key check (it may fail later, on its value
    # or a missing neighbour); a key one letter off does not.
    wrappers = {
        "server": "[server]\n{}",
        "sources": "[[sources]]\n{}",
        "auth": "[auth]\n{}",
        "auth.tokens": "[[auth.tokens]]\n{}",
        "auth.proxy": "[auth.proxy]\n{}",
    }
    file = tmp_path / "probe.toml"
    for table, keys in real_config_keys().items():
        for key, known in [(k, True) for k in keys] + [(k + "x", False) for k in keys]:
            file.write_text(wrappers[table].format(f"{key} = 1\n"))
            try:
                config.load_settings(file, env={})
                message = ""
            except ConfigError as exc:
                message = str(exc)
            assert ("unknown key" not in message) is known, (table, key, message)


def test_the_readme_is_short() -> None:
    assert len(README.read_bytes()) < README_MAX_BYTES


def test_the_readme_examples_load(tmp_path: Path) -> None:
    blocks = list(_toml_blocks(README.read_text()))
    assert blocks
    for index, block in enumerate(blocks):
        file = tmp_path / f"example{index}.toml"
        file.write_text(block)
        assert config.load_settings(file, env={}).sources, block


def test_every_command_is_documented() -> None:
    text = CONFIGURATION.read_text()
    for name in main.commands:
        assert f"`jobbridge {name}" in text, name


def test_every_flag_is_documented() -> None:
    text = CONFIGURATION.read_text()
    options = {o for p in main.params for o in p.opts if o.startswith("--")}
    wrong = [f"jobbridge {o}" for o in sorted(options) if o not in text]
    for name, command in main.commands.items():
        flags = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        wrong += [
            f"jobbridge {name} {f}" for f in sorted(flags) if f.startswith("--") and f not in text
        ]
        # A flag the commands table gives a command is one of that command's options.
        for row in re.findall(rf"^\| `jobbridge {name}\b.*$", text, flags=re.M):
            wrong += [f"{name}: {f}" for f in re.findall(r"--[a-z][a-z-]*", row) if f not in flags]
    assert wrong == []


def test_every_make_target_the_docs_name_exists() -> None:
    targets = set(re.findall(r"^([a-z0-9-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    wrong = [
        f"{page.name}: make {target}"
        for page in _pages()
        for target in sorted(
            set(re.findall(r"(?:^|`)make ([a-z0-9-]+)", page.read_text(), flags=re.M))
        )
        if target not in targets
    ]
    assert wrong == []


def test_every_setting_is_documented() -> None:
    # In docs/configuration.md or in the page of the system the key belongs to.
    documented: set[tuple[str, str]] = set()
    for page in (CONFIGURATION, *(DOCS / f"{s}.md" for s in ("autumn", "rq", "celery"))):
        documented |= _named_keys(page.read_text())
    missing = sorted(
        f"{table}.{key}"
        for table, keys in real_config_keys().items()
        for key in keys
        # A key that is a table of its own ([auth.proxy]) is documented by its keys.
        if (table, key) not in documented and f"{table}.{key}" not in real_config_keys()
    )
    text = CONFIGURATION.read_text()
    envs = (ENV_CONFIG, *ENV_SERVER, ENV_SESSION_SECRET, ENV_REDIS_URL)
    missing += [env for env in envs if f"`{env}`" not in text]
    assert missing == []


def test_every_config_key_the_docs_name_is_real() -> None:
    real = real_config_keys()
    bare = set().union(*real.values())
    wrong: list[str] = []
    for page in _pages():
        text = page.read_text()
        wrong += [
            f"{page.name}: {table}.{key}"
            for table, key in sorted(_named_keys(text))
            if key not in real.get(table, ())
        ]
        # A word in backticks one letter off a key is a typo or a key that was renamed.
        for code in set(_inline_code(text)):
            if re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", code) and code not in bare:
                close = difflib.get_close_matches(code, bare, n=1, cutoff=0.9)
                if close:
                    wrong.append(f"{page.name}: `{code}` (did you mean {close[0]}?)")
    assert wrong == []


def test_every_environment_variable_the_docs_name_is_real() -> None:
    code = "\n".join(
        p.read_text() for d in ("jobbridge", "tests") for p in (ROOT / d).rglob("*.py")
    )
    code += (ROOT / "Makefile").read_text()
    wrong = [
        f"{page.name}: {name}"
        for page in _pages()
        for name in sorted(set(re.findall(r"\bJOBBRIDGE_[A-Z0-9_]+", page.read_text())))
        if f'"{name}"' not in code and f"{name}=" not in code
    ]
    assert wrong == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+)$", _prose(page.read_text()), flags=re.M)
    return {_slug(h) for h in headings}


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken: list[str] = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_file():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    assert broken == []


def _repo_files() -> list[str]:
    skip = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
    return [
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)
    ]


def _cited_paths(text: str) -> Iterator[str]:
    """Words in backticks that name a file or folder of the repository."""
    for code in _inline_code(text):
        code = re.sub(r":[\d-]+$", "", code)  # a line number or range after a path
        if " " in code or "://" in code or code.startswith("/"):
            continue
        if (code.split("/")[0] in _TOP_LEVEL and code not in _TOP_LEVEL) or code.endswith(
            _FILE_ENDINGS
        ):
            yield code


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_every_cited_path_exists(page: Path) -> None:
    files = _repo_files()
    folders = {f.rsplit("/", 1)[0] for f in files if "/" in f}
    missing = []
    for path in sorted(set(_cited_paths(page.read_text()))):
        # A placeholder (`jobbridge/adapters/<system>/system.py`) stands for any one name.
        bare = re.sub(r"<[^>/]+>", "*", path.rstrip("/"))
        if bare.split("/")[0] in _TOP_LEVEL:
            found = any(fnmatch.fnmatchcase(f, bare) for f in files) or bare in folders
        else:
            # Cited by its tail (`lua/any_refuse.lua`, `actions.py`): some file must end so.
            found = any(fnmatch.fnmatchcase(f, f"*/{bare}") or f == bare for f in files)
        if not found:
            missing.append(path)
    assert missing == []
