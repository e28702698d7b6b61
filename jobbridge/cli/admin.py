"""The admin commands: ``acl`` (least-privilege Redis users) and ``doctor`` (what a Redis holds)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import redis.exceptions

from jobbridge.acl import (
    acl_setuser,
    redis_server_of,
    selectors_supported,
    state_acl_setuser,
    viewer_notes,
)
from jobbridge.adapters import Detected, systems, title
from jobbridge.cli.common import (
    EXIT_UNAVAILABLE,
    UsageError,
    cli_settings,
    config_option,
    echo,
    echo_notes,
    redis_option,
    run,
)
from jobbridge.cli.source_checks import echo_advice
from jobbridge.errors import ConfigError, SourceUnavailable
from jobbridge.redis_urls import redact_url
from jobbridge.settings import Role, SourceConfig
from jobbridge.sources import DETECT_SOURCE_LIMIT, connect, detect, resolve_sources
from jobbridge.text import clean, quoted


@click.command()
@config_option
@redis_option
@click.option(
    "--role",
    type=click.Choice(["viewer", "operator", "state"]),
    default=None,
    help="What the user may do (default: viewer when read_only is set, else operator); "
    "state: the user of [server] shared_state_url, where replicas share sign-outs and failed "
    "sign-ins.",
)
@click.option("--user", default="jobbridge", show_default=True, help="ACL user name.")
@click.option(
    "--redis-version",
    default=None,
    metavar="X.Y",
    help="The servers' Redis version (7.0+ has key selectors: a Celery viewer then writes "
    "only jobbridge's own keys). Default: asked of each server (INFO server); when it cannot "
    "be reached, 7.0 is assumed and said (a 6.2 server refuses that line).",
)
def acl(
    config_path: Path | None,
    redis_url: str | None,
    role: str | None,
    user: str,
    redis_version: str | None,
) -> None:
    """Print the Redis ACL SETUSER line of a least-privilege jobbridge user, per Redis."""
    told: bool | None = None
    if redis_version is not None:
        try:
            told = selectors_supported(redis_version)
        except ValueError:
            raise UsageError(f"--redis-version: not a version: {redis_version!r}") from None
    settings = cli_settings(config_path, redis_url)
    if not settings.sources and not settings.detect_url:
        raise UsageError("no sources: pass --redis URL or --config FILE")
    if not user or not all(c.isalnum() or c in "_.-" for c in user):
        raise UsageError("--user: letters, digits, '_', '.', '-' only")
    settings, notes = run(resolve_sources(settings))
    echo_notes(notes)
    if role == "state":
        url = settings.server.shared_state_url
        if url == "":
            raise UsageError('[server] shared_state_url is "": nothing is shared in Redis')
        first = settings.sources[0]
        prefix = first.jobbridge_prefix if url is None else "jobbridge:"
        where = redis_server_of(url or first.redis_url, None if url else first.sentinel_master)
        echo(f"# {clean(where)}: shared state of the replicas; set the password, then run:")
        echo(state_acl_setuser(user, prefix))
        return
    chosen: Role = "viewer" if role == "viewer" else "operator"
    if role is None and settings.server.read_only:
        chosen = "viewer"
    # ACL users belong to a server, not to a database: one line per server, or a second
    # SETUSER's resetkeys would drop the first one's keys.
    by_server: dict[str, list[SourceConfig]] = {}
    for source in settings.sources:
        server = redis_server_of(source.redis_url, source.sentinel_master)
        by_server.setdefault(server, []).append(source)
    for server, sources in by_server.items():
        names = ", ".join(s.name for s in sources)
        selectors = told
        if selectors is None:
            selectors, version = run(_server_selectors(sources[0]))
            echo(f"# {clean(server)}: {clean(version)}")
        echo(
            f"# {clean(server)}: {chosen} of {clean(names)}; set the password, then run in "
            "redis-cli:"
        )
        for note in viewer_notes(sources, chosen, selectors=selectors):
            echo(note)
        echo(acl_setuser(user, sources, chosen, selectors=selectors))


async def _server_selectors(source: SourceConfig) -> tuple[bool, str]:
    """(whether the source's server has ACL key selectors, what was found, in words)."""
    try:
        client = connect(source.redis_url, sentinel_master=source.sentinel_master)
    except ConfigError as exc:
        return True, f"not asked ({exc}); Redis 7.0+ assumed (--redis-version to say)"
    try:
        info = await client.info("server")
        version = str(info.get("redis_version", ""))
        return selectors_supported(version), f"Redis {version}"
    except (redis.exceptions.RedisError, OSError, ValueError) as exc:
        return True, (
            f"version not known ({type(exc).__name__}); Redis 7.0+ assumed "
            "(--redis-version 6.2 for an older server)"
        )
    finally:
        await client.aclose()


def _titles() -> str:
    """Every registered system's title: "Autumn, RQ or Celery"."""
    shown = [spec.title for spec in systems().values()]
    return " or ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)


@click.command()
@config_option
@redis_option
def doctor(config_path: Path | None, redis_url: str | None) -> None:
    """Check each source's Redis and say which job systems it holds."""
    settings = cli_settings(config_path, redis_url)
    # Each Redis once, with the Sentinel master a source names for it.
    targets: dict[tuple[str, str | None], str | None] = {
        (s.redis_url, s.sentinel_master): s.sentinel_password for s in settings.sources
    }
    if settings.detect_url:
        targets.setdefault((settings.detect_url, None), None)
    if not targets:
        raise click.ClickException("nothing to check: pass --redis URL or --config FILE")

    async def check() -> bool:
        healthy = True
        found_at: dict[str, list[Detected]] = {}
        for (url, master), password in sorted(targets.items(), key=lambda t: t[0][0]):
            shown = clean(redact_url(url))
            try:
                found = await detect(url, sentinel_master=master, sentinel_password=password)
            except SourceUnavailable as exc:
                echo(f"✗ {shown}: unreachable ({clean(exc.detail)})")
                healthy = False
                continue
            except ConfigError as exc:
                echo(f"✗ {shown}: {clean(exc)}")
                healthy = False
                continue
            echo(f"✓ {shown}: reachable")
            found_at[url] = found
            if not found:
                echo(f"    no {_titles()} keys found")
            for item in found:
                support = "supported" if item.supported else "not supported yet"
                echo(
                    f"    {item.system} (prefix {quoted(item.key_prefix, 120)}, "
                    f"{clean(item.evidence, 200)}): {support}"
                )
            for name in systems():
                count = sum(item.system == name for item in found)
                if count > DETECT_SOURCE_LIMIT and not settings.sources:
                    echo(
                        f"    {count} {title(name)} prefixes: --redis watches the first "
                        f"{DETECT_SOURCE_LIMIT}; name the others in a config file"
                    )
        for source in settings.sources:
            echo(
                f"source {clean(source.name)}: {source.system} at prefix "
                f"{quoted(source.effective_key_prefix, 120)}"
            )
        await echo_advice(settings, found_at)
        return healthy

    if not run(check()):
        sys.exit(EXIT_UNAVAILABLE)
