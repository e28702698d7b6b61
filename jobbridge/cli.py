"""The ``jobbridge`` command: serve, demo, snapshot, show, retry / cancel / discard, audit, doctor.

Every command reads the same settings (``--config`` file < ``JOBBRIDGE_*`` environment <
flags). ``--redis URL`` without a config file detects the systems in that Redis.

Job data, audit entries, key names and Redis's error texts are anyone's who can write to Redis:
each value goes through :func:`jobbridge.text.clean` before it is put in a line, and every line
that is not JSON leaves through :func:`_echo`, which marks any control character left but the
newlines and tabs the CLI writes itself. JSON is printed with ``ensure_ascii``, which escapes them.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import redis.exceptions

from jobbridge import __version__
from jobbridge.acl import (
    acl_setuser,
    redis_server_of,
    selectors_supported,
    state_acl_setuser,
    viewer_notes,
)
from jobbridge.adapters import action_notes, systems, title
from jobbridge.config import load_settings
from jobbridge.errors import ConfigError, JobbridgeError, SourceUnavailable, UnknownSource
from jobbridge.model import Action, ListName, Outcome, SnapshotQuery
from jobbridge.redis_urls import redact_url
from jobbridge.render import render_detail, render_snapshot
from jobbridge.serialize import action_json, audit_json, detail_json, snapshot_json
from jobbridge.service import JobService
from jobbridge.settings import Role, Settings, SourceConfig
from jobbridge.sources import (
    DETECT_SOURCE_LIMIT,
    build_adapters,
    connect,
    detect,
    resolve_sources,
)
from jobbridge.text import clean, clean_terminal, quoted

T = TypeVar("T")

#: Process exit codes, so scripts can tell outcomes apart.
EXIT_OK = 0
EXIT_REFUSED = 1  # the action was refused (not found, wrong state, conflict, corrupt)
EXIT_USAGE = 2  # bad configuration or arguments (click uses 2 too)
EXIT_UNAVAILABLE = 3  # Redis could not be reached

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML config file (env: JOBBRIDGE_CONFIG).",
)
_redis_option = click.option(
    "--redis",
    "redis_url",
    default=None,
    metavar="URL",
    help="Redis to inspect when no config file names sources; the systems in it are "
    "detected (env: JOBBRIDGE_REDIS_URL).",
)
_entry_option = click.option(
    "--entry",
    default=None,
    help="Which entry of the id (the `entry` a row shows, e.g. one of two Celery messages "
    "carrying one task id); default: the first found.",
)


def _echo(text: str, *, err: bool = False) -> None:
    """Print text that is not JSON: the one way out for it (see the module docstring)."""
    click.echo(clean_terminal(text), err=err)


def _echo_json(data: object, indent: int | None = None) -> None:
    """Print JSON; ``ensure_ascii`` escapes every control character a value may hold."""
    click.echo(json.dumps(data, indent=indent, ensure_ascii=True))


def _echo_notes(notes: list[str]) -> None:
    for note in notes:
        _echo(f"note: {clean(note)}", err=True)


class _Group(click.Group):
    """The command group: error messages are cleaned like any other line the CLI prints."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            # click declares ``message`` Final for type checkers; show() reads it at print time.
            object.__setattr__(exc, "message", clean(exc.message))
            raise


class _LogFormatter(logging.Formatter):
    """Log lines cleaned too: a message is one line; a traceback keeps its newlines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return clean(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        return clean_terminal(super().format(record))


class _UnavailableError(click.ClickException):
    exit_code = EXIT_UNAVAILABLE


class _UsageError(click.ClickException):
    exit_code = EXIT_USAGE


def _settings(config_path: Path | None, redis_url: str | None, **flags: Any) -> Settings:
    try:
        return load_settings(config_path, overrides={"redis_url": redis_url, **flags})
    except ConfigError as exc:
        raise _UsageError(clean(exc)) from exc


def _run(coro: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await coro

    return asyncio.run(wrapped())


async def _with_service(settings: Settings, use: Callable[[JobService], Awaitable[T]]) -> T:
    settings, notes = await resolve_sources(settings)
    _echo_notes(notes)
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
        return _UnavailableError(clean(exc))
    return _UsageError(clean(exc))


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="jobbridge")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """An operator's window onto Autumn, RQ and Celery job queues in Redis."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler()
    handler.setFormatter(_LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


@main.command()
@_config_option
@_redis_option
@click.option("--source", "source_name", default=None, help="Only this source (default: all).")
@click.option("--per-page", type=int, default=None, help="Rows per list, 1..100 (default 25).")
@click.option(
    "--page",
    "pages",
    multiple=True,
    metavar="LIST=N",
    help="Page of one list, e.g. --page failed=2 (lists: enqueued, scheduled, running, "
    "completed, failed). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def snapshot(
    config_path: Path | None,
    redis_url: str | None,
    source_name: str | None,
    per_page: int | None,
    pages: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print the counters and one page of each list of every source."""
    query = SnapshotQuery.build(_parse_pages(pages), per_page)
    settings = _settings(config_path, redis_url)

    async def use(service: JobService) -> None:
        names = [source_name] if source_name else list(service.adapters)
        shots = [await service.snapshot(name, query) for name in names]
        if as_json:
            _echo_json({"snapshots": [snapshot_json(s) for s in shots]}, indent=2)
        else:
            _echo("\n\n".join(render_snapshot(s) for s in shots))

    try:
        _run(_with_service(settings, use))
    except (UnknownSource, SourceUnavailable, ConfigError) as exc:
        raise _fail(exc) from exc


def _parse_pages(values: tuple[str, ...]) -> dict[ListName, int | None]:
    pages: dict[ListName, int | None] = {}
    for value in values:
        name, _, number = value.partition("=")
        try:
            pages[ListName(name.strip())] = int(number)
        except ValueError:
            raise click.BadParameter(
                f"{value!r}: expected LIST=N with LIST one of "
                f"{', '.join(n.value for n in ListName)}",
                param_hint="--page",
            ) from None
    return pages


@main.command()
@_config_option
@_redis_option
@click.option(
    "--source", "source_name", default=None, help="Source of the job (default: the only source)."
)
@_entry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("job_id")
def show(
    config_path: Path | None,
    redis_url: str | None,
    source_name: str | None,
    entry: str | None,
    as_json: bool,
    job_id: str,
) -> None:
    """Show one job: every field, its payload and its lifecycle."""
    settings = _settings(config_path, redis_url)

    async def use(service: JobService) -> None:
        name = _one_source(service, source_name)
        detail = await service.job(name, job_id, entry=entry)
        if detail is None:
            raise click.ClickException(
                f"job {quoted(job_id, 200)} not found in source {quoted(name)}"
            )
        if as_json:
            _echo_json(detail_json(detail), indent=2)
        else:
            _echo(render_detail(detail))

    try:
        _run(_with_service(settings, use))
    except (UnknownSource, SourceUnavailable, ConfigError) as exc:
        raise _fail(exc) from exc


def _one_source(service: JobService, name: str | None) -> str:
    if name:
        service.adapter(name)
        return name
    if len(service.adapters) != 1:
        raise click.UsageError(
            f"--source is required with several sources ({', '.join(service.adapters)})"
        )
    return next(iter(service.adapters))


def _action_command(action: Action) -> click.Command:
    @_config_option
    @_redis_option
    @click.option(
        "--source",
        "source_name",
        default=None,
        help="Source of the job (default: the only source).",
    )
    @click.option(
        "--actor", default=None, help="Name recorded in the audit log (default: cli:<user>)."
    )
    @_entry_option
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.argument("job_ids", nargs=-1, required=True)
    def command(
        config_path: Path | None,
        redis_url: str | None,
        source_name: str | None,
        actor: str | None,
        entry: str | None,
        as_json: bool,
        job_ids: tuple[str, ...],
    ) -> None:
        settings = _settings(config_path, redis_url)
        who = actor or f"cli:{getpass.getuser()}"

        async def use(service: JobService) -> int:
            name = _one_source(service, source_name)
            worst = EXIT_OK
            for job_id in job_ids:
                result = await service.act(name, job_id, action, who, entry=entry)
                if as_json:
                    _echo_json(action_json(result))
                else:
                    _echo(f"{result.outcome.value}: {clean(result.message)}")
                if result.outcome is Outcome.UNAVAILABLE:
                    worst = EXIT_UNAVAILABLE
                elif result.outcome is not Outcome.DONE and worst == EXIT_OK:
                    worst = EXIT_REFUSED
            return worst

        try:
            code = _run(_with_service(settings, use))
        except (UnknownSource, SourceUnavailable, ConfigError) as exc:
            raise _fail(exc) from exc
        sys.exit(code)

    command.__doc__ = _action_help(action)
    return click.command(action.value)(command)


#: What each action's help says before the notes of the systems that offer it
_ACTION_LEADS = {
    Action.RETRY: "Retry terminally failed jobs: each is enqueued again under a new id.",
    Action.CANCEL: "Cancel jobs no worker has taken yet (enqueued or scheduled).",
    Action.DISCARD: "Discard terminally failed jobs from the failed list.",
    Action.STOP: "Ask the worker running each job to stop it",
    Action.REVOKE: "",
}


def _action_help(action: Action) -> str:
    """An action command's help: what it does, then what each system says of it."""
    notes = action_notes(action, "cli")
    if action is Action.STOP:
        return _ACTION_LEADS[action] + (f" ({'; '.join(notes)})" if notes else "") + "."
    return " ".join(part for part in (_ACTION_LEADS[action], *notes) if part)


for _action in Action:
    main.add_command(_action_command(_action))


@main.command()
@_config_option
@_redis_option
@click.option("--source", "source_name", default=None, help="Only this source.")
@click.option("--limit", default=50, show_default=True, help="Entries to show (max 1000).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit(
    config_path: Path | None,
    redis_url: str | None,
    source_name: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Print the audit log of operator actions, newest first."""
    settings = _settings(config_path, redis_url)

    async def use(service: JobService) -> None:
        entries = await service.audit(source_name, limit)
        if as_json:
            _echo_json({"entries": [audit_json(e) for e in entries]}, indent=2)
            return
        if not entries:
            _echo("no audit entries")
        for e in entries:
            new = f" -> {clean(e.new_id)}" if e.new_id else ""
            _echo(
                f"{e.at:%Y-%m-%d %H:%M:%S}Z  {clean(e.source)}  {clean(e.actor)}  "
                f"{clean(e.action)} {clean(e.job_id)}{new}: {clean(e.outcome)}"
            )

    try:
        _run(_with_service(settings, use))
    except (UnknownSource, SourceUnavailable, ConfigError) as exc:
        raise _fail(exc) from exc


@main.command()
@_config_option
@_redis_option
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
            raise _UsageError(f"--redis-version: not a version: {redis_version!r}") from None
    settings = _settings(config_path, redis_url)
    if not settings.sources and not settings.detect_url:
        raise _UsageError("no sources: pass --redis URL or --config FILE")
    if not user or not all(c.isalnum() or c in "_.-" for c in user):
        raise _UsageError("--user: letters, digits, '_', '.', '-' only")
    settings, notes = _run(resolve_sources(settings))
    _echo_notes(notes)
    if role == "state":
        url = settings.server.shared_state_url
        if url == "":
            raise _UsageError('[server] shared_state_url is "": nothing is shared in Redis')
        first = settings.sources[0]
        prefix = first.jobbridge_prefix if url is None else "jobbridge:"
        where = redis_server_of(url or first.redis_url, None if url else first.sentinel_master)
        _echo(f"# {clean(where)}: shared state of the replicas; set the password, then run:")
        _echo(state_acl_setuser(user, prefix))
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
            selectors, version = _run(_server_selectors(sources[0]))
            _echo(f"# {clean(server)}: {clean(version)}")
        _echo(
            f"# {clean(server)}: {chosen} of {clean(names)}; set the password, then run in "
            "redis-cli:"
        )
        for note in viewer_notes(sources, chosen, selectors=selectors):
            _echo(note)
        _echo(acl_setuser(user, sources, chosen, selectors=selectors))


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


@main.command()
@_config_option
@_redis_option
def doctor(config_path: Path | None, redis_url: str | None) -> None:
    """Check each source's Redis and say which job systems it holds."""
    settings = _settings(config_path, redis_url)
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
        for (url, master), password in sorted(targets.items(), key=lambda t: t[0][0]):
            shown = clean(redact_url(url))
            try:
                found = await detect(url, sentinel_master=master, sentinel_password=password)
            except SourceUnavailable as exc:
                _echo(f"✗ {shown}: unreachable ({clean(exc.detail)})")
                healthy = False
                continue
            except ConfigError as exc:
                _echo(f"✗ {shown}: {clean(exc)}")
                healthy = False
                continue
            _echo(f"✓ {shown}: reachable")
            if not found:
                _echo(f"    no {_titles()} keys found")
            for item in found:
                support = "supported" if item.supported else "not supported yet"
                _echo(
                    f"    {item.system} (prefix {quoted(item.key_prefix, 120)}, "
                    f"{clean(item.evidence, 200)}): {support}"
                )
            for name in systems():
                count = sum(item.system == name for item in found)
                if count > DETECT_SOURCE_LIMIT and not settings.sources:
                    _echo(
                        f"    {count} {title(name)} prefixes: --redis watches the first "
                        f"{DETECT_SOURCE_LIMIT}; name the others in a config file"
                    )
        for source in settings.sources:
            _echo(
                f"source {clean(source.name)}: {source.system} at prefix "
                f"{quoted(source.effective_key_prefix, 120)}"
            )
        return healthy

    if not _run(check()):
        sys.exit(EXIT_UNAVAILABLE)


@main.command()
@_config_option
@_redis_option
@click.option(
    "--host", default=None, help="Address to listen on (default 127.0.0.1; env: JOBBRIDGE_HOST)."
)
@click.option("--port", default=None, type=int, help="Port (default 8080; env: JOBBRIDGE_PORT).")
@click.option(
    "--prefix",
    default=None,
    help="URL prefix of the dashboard (default /admin; env: JOBBRIDGE_PREFIX).",
)
@click.option(
    "--read-only/--read-write",
    "read_only",
    default=None,
    help="Disable every action (env: JOBBRIDGE_READ_ONLY).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    default=None,
    help="Allow a non-loopback address without authentication. Anyone who can reach "
    "the port can then cancel, retry and discard jobs.",
)
def serve(
    config_path: Path | None,
    redis_url: str | None,
    host: str | None,
    port: int | None,
    prefix: str | None,
    read_only: bool | None,
    insecure_no_auth: bool | None,
) -> None:
    """Serve the dashboard and the JSON API."""
    settings = _settings(
        config_path,
        redis_url,
        host=host,
        port=port,
        prefix=prefix,
        read_only=read_only,
        insecure_no_auth=insecure_no_auth or None,
    )
    run_server(settings)


def run_server(settings: Settings) -> None:
    """Resolve sources, check the bind is safe, and serve until interrupted."""
    from aiohttp import web

    from jobbridge.web.app import create_app, freeze_after_startup
    from jobbridge.web.request_checks import check_bind_allowed

    try:
        check_bind_allowed(settings)
    except ConfigError as exc:
        raise click.ClickException(clean(exc)) from exc
    settings, notes = asyncio.run(resolve_sources(settings))
    _echo_notes(notes)
    if not settings.sources:
        raise click.ClickException(
            "no sources: pass --redis URL or a --config file with [[sources]]"
        )
    server = settings.server
    _echo(
        f"jobbridge {__version__}: http://{server.host}:{server.port}{server.prefix}/jobs "
        f"({clean(', '.join(s.name for s in settings.sources))})"
    )
    if settings.auth.tokens and not settings.auth.session_secret:
        _echo_notes(
            [
                "[auth] session_secret is not set: sessions are signed with a key of this "
                "process only, so they end when it restarts, and replicas behind one load "
                "balancer refuse each other's sessions; give every replica the same "
                "session_secret"
            ]
        )
    app = create_app(settings)
    freeze_after_startup(app)
    web.run_app(app, host=server.host, port=server.port, print=None, access_log=None)


@main.command()
@click.option("--port", default=8080, show_default=True, help="Dashboard port.")
@click.option(
    "--redis-port",
    default=None,
    type=int,
    help="Port of the demo's own redis-server (default: a free one; never 6379).",
)
def demo(port: int, redis_port: int | None) -> None:
    """Start a private Redis, fill it with Autumn jobs, keep a worker busy, serve the dashboard."""
    from jobbridge.demo import run_demo

    run_demo(dashboard_port=port, redis_port=redis_port)
