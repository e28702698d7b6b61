"""Every CLI command and every config key is documented in the README."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from jobbridge.cli import main
from jobbridge.config import ENV_REDIS_URL, ENV_SERVER, ENV_SESSION_SECRET, source_keys
from jobbridge.settings import AuthConfig, ProxyAuthConfig, ServerConfig, TokenConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_command_is_in_the_readme() -> None:
    for name in main.commands:
        assert f"`jobbridge {name}" in README, name


def test_every_setting_is_in_the_readme() -> None:
    tables = (ServerConfig, TokenConfig, ProxyAuthConfig, AuthConfig)
    # A source's keys: its common ones and every registered system's own (broker_url too).
    keys = [f.name for table in tables for f in fields(table)] + source_keys()
    # As a TOML line of the README's example ("key = "), or as a table ("[auth.proxy]").
    missing = [key for key in keys if f"{key} = " not in README and f".{key}]" not in README]
    missing += [
        env for env in (*ENV_SERVER, ENV_SESSION_SECRET, ENV_REDIS_URL) if f"`{env}`" not in README
    ]
    assert missing == []
