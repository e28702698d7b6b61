"""What every command shares: the options, the one way out for lines, settings and the service.

Every line that is not JSON leaves through :func:`echo`, which marks any control character left but
the newlines and tabs the CLI writes itself (see :mod:`jobbridge.cli`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from jobbridge.config import load_settings
from jobbridge.errors import ConfigError, JobbridgeError, SourceUnavailable, UnknownSource
from jobbridge.service import JobService
from jobbridge.settings import Settings
from jobbridge.sources import build_adapters, resolve_sources
from jobbridge.text import clean, clean_terminal

T = TypeVar("T")

#: Process exit codes, so scripts can tell outcomes apart.
EXIT_OK = 0
EXIT_REFUSED = 1  # the action was refused (not found, wrong state, conflict, corrupt)
EXIT_USAGE = 2  # bad configuration or arguments (click uses 2 too)
EXIT_UNAVAILABLE = 3  # Redis could not be reached

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML config file (env: JOBBRIDGE_CONFIG).",
)
redis_option = click.option(
    "--redis",
    "redis_url",
    default=None,
    metavar="URL",
    help="Redis to inspect when no config file names sources; the systems in it are "
    "detected (env: JOBBRIDGE_REDIS_URL).",
)
entry_option = click.option(
    "--entry",
    default=None,
    help="Which entry of the id (the `entry` a row shows, e.g. one of two Celery messages "
    "carrying one task id); default: the first found.",
)


def echo(text: str, *, err: bool = False) -> None:
    """Print text that is not JSON: the one way out for it (see the module docstring)."""
    click.echo(clean_terminal(text), err=err)


def echo_json(data: object, indent: int | None = None) -> None:
    """Print JSON; ``ensure_ascii`` escapes every control character a value may hold."""
    click.echo(json.dumps(data, indent=indent, ensure_ascii=True))


def echo_notes(notes: list[str]) -> None:
    for note in notes:
        echo(f"note: {clean(note)}", err=True)


class UnavailableError(click.ClickException):
    exit_code = EXIT_UNAVAILABLE


class UsageError(click.ClickException):
    exit_code = EXIT_USAGE


def cli_settings(config_path: Path | None, redis_url: str | None, **flags: Any) -> Settings:
    try:
        return load_settings(config_path, overrides={"redis_url": redis_url, **flags})
    except ConfigError as exc:
        raise UsageError(clean(exc)) from exc


def run(coro: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await coro

    return asyncio.run(wrapped())


def run_with_service(settings: Settings, use: Callable[[JobService], Awaitable[T]]) -> T:
    """``use`` a service over the settings' sources; an unknown or unreachable source, or a bad
    configuration, ends the command with its error and exit code."""
    try:
        return run(_with_service(settings, use))
    except (UnknownSource, SourceUnavailable, ConfigError) as exc:
        raise _fail(exc) from exc


async def _with_service(settings: Settings, use: Callable[[JobService], Awaitable[T]]) -> T:
    settings, notes = await resolve_sources(settings)
    echo_notes(notes)
    service = JobService(
        build_adapters(settings.sources),
        read_only=settings.server.read_only,
        read_timeout_s=settings.server.read_timeout_s,
    )
    try:
        await service.discover_once()
        return await use(service)
    finally:
        await service.close()


def _fail(exc: JobbridgeError) -> click.ClickException:
    if isinstance(exc, SourceUnavailable):
        return UnavailableError(clean(exc))
    return UsageError(clean(exc))
