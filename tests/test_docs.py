"""Every CLI command and every config key is documented in the README."""

from __future__ import annotations

from pathlib import Path

from jobbridge.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_command_is_in_the_readme() -> None:
    for name in main.commands:
        assert f"`jobbridge {name}" in README, name


def test_every_setting_is_in_the_readme() -> None:
    for key in (
        "host",
        "port",
        "prefix",
        "read_only",
        "name",
        "system",
        "redis_url",
        "key_prefix",
        "queues",
        "jobbridge_prefix",
        "token_sha256",
        "role",
        "trusted_addresses",
        "session_secret",
        "JOBBRIDGE_REDIS_URL",
        "JOBBRIDGE_READ_ONLY",
    ):
        assert key in README, key
