"""The ``jobbridge`` command: serve, demo, snapshot, show, the actions, audit; acl and doctor in
:mod:`jobbridge.cli.admin`, compare in :mod:`jobbridge.cli.compare`. Settings: ``--config`` file
< ``JOBBRIDGE_*`` environment < flags (docs/configuration.md). Values from Redis are anyone's:
each goes through :func:`jobbridge.text.clean`, and every non-JSON line through
:func:`jobbridge.cli.common.echo`.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

import click

from jobbridge import __version__
from jobbridge.adapters import action_notes
from jobbridge.bulk.model import BULK_ACTIONS
from jobbridge.cli.admin import acl, doctor
from jobbridge.cli.bulk import FILTER_FLAGS, bulk_filter, bulk_options, run_bulk
from jobbridge.cli.census import census
from jobbridge.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    cli_settings,
    config_option,
    echo,
    echo_json,
    echo_notes,
    entry_option,
    redis_option,
    run_with_service,
)
from jobbridge.cli.compare import compare
from jobbridge.cli.search import search_command, where_is
from jobbridge.errors import ConfigError
from jobbridge.filters import JobFilter
from jobbridge.model import Action, ListName, Outcome, SnapshotQuery
from jobbridge.render import render_detail, render_snapshot
from jobbridge.serialize import action_json, audit_json, detail_json, snapshot_json
from jobbridge.service import JobService
from jobbridge.settings import Settings
from jobbridge.sources import resolve_sources
from jobbridge.text import clean, clean_terminal, quoted


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
@config_option
@redis_option
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
    settings = cli_settings(config_path, redis_url)

    async def use(service: JobService) -> None:
        names = [source_name] if source_name else list(service.adapters)
        shots = [await service.snapshot(name, query) for name in names]
        if as_json:
            echo_json({"snapshots": [snapshot_json(s) for s in shots]}, indent=2)
        else:
            echo("\n\n".join(render_snapshot(s) for s in shots))

    run_with_service(settings, use)


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
@config_option
@redis_option
@click.option(
    "--source", "source_name", default=None, help="Source of the job (default: any that has it)."
)
@entry_option
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
    """Show one job: every field, its payload and its lifecycle. Without --source, the id is
    looked up in every source; when several have it, they are named."""
    settings = cli_settings(config_path, redis_url)

    async def use(service: JobService) -> None:
        if source_name is None and len(service.adapters) > 1:
            name = await where_is(service, job_id, entry)
        else:
            name = _one_source(service, source_name)
        detail = await service.job(name, job_id, entry=entry)
        if detail is None:
            raise click.ClickException(
                f"job {quoted(job_id, 200)} not found in source {quoted(name)}"
            )
        if as_json:
            echo_json(detail_json(detail), indent=2)
        else:
            echo(render_detail(detail))

    run_with_service(settings, use)


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
    bulk = action in BULK_ACTIONS

    @config_option
    @redis_option
    @click.option(
        "--source",
        "source_name",
        default=None,
        help="Source of the job (default: the only source).",
    )
    @click.option(
        "--actor", default=None, help="Name recorded in the audit log (default: cli:<user>)."
    )
    @entry_option
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.argument("job_ids", nargs=-1, required=not bulk)
    def command(
        config_path: Path | None,
        redis_url: str | None,
        source_name: str | None,
        actor: str | None,
        entry: str | None,
        as_json: bool,
        job_ids: tuple[str, ...],
        **bulk_flags: Any,
    ) -> None:
        bulk_all = bool(bulk_flags.pop("bulk_all", False))
        if bulk:
            job_filter = _bulk_arguments(bulk_all, job_ids, entry, bulk_flags)
        settings = cli_settings(config_path, redis_url)
        who = actor or f"cli:{getpass.getuser()}"

        async def use(service: JobService) -> int:
            name = _one_source(service, source_name)
            if bulk_all:
                return await run_bulk(
                    service,
                    name,
                    action,
                    ListName(bulk_flags["bulk_list"]),
                    job_filter,
                    who,
                    dry_run=bulk_flags["dry_run"],
                    yes=bulk_flags["yes"],
                    as_json=as_json,
                )
            worst = EXIT_OK
            for job_id in job_ids:
                result = await service.act(name, job_id, action, who, entry=entry)
                if as_json:
                    echo_json(action_json(result))
                else:
                    echo(f"{result.outcome.value}: {clean(result.message)}")
                if result.outcome is Outcome.UNAVAILABLE:
                    worst = EXIT_UNAVAILABLE
                elif result.outcome is not Outcome.DONE and worst == EXIT_OK:
                    worst = EXIT_REFUSED
            return worst

        code = run_with_service(settings, use)
        sys.exit(code)

    command.__doc__ = _action_help(action)
    if bulk:
        command = bulk_options(action)(command)
    return click.command(action.value)(command)


def _bulk_arguments(
    bulk_all: bool, job_ids: tuple[str, ...], entry: str | None, flags: dict[str, Any]
) -> JobFilter:
    """The filter of a bulk command's flags; a usage error when they do not fit together."""
    values = {name: flags.get(f"filter_{name}") for name in FILTER_FLAGS}
    given = [FILTER_FLAGS[name] for name, value in values.items() if value is not None]
    if bulk_all:
        if job_ids:
            raise click.UsageError("give job ids or --all, not both")
        if entry is not None:
            raise click.UsageError("--entry names one job's entry: not with --all")
        return bulk_filter(values)
    extra = given + [f for f in ("--dry-run", "--yes") if flags.get(f[2:].replace("-", "_"))]
    if extra:
        raise click.UsageError(f"{', '.join(extra)} only with --all")
    if not job_ids:
        raise click.UsageError("give job ids, or --all with filter flags")
    return JobFilter()


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
main.add_command(acl)
main.add_command(census)
main.add_command(compare)
main.add_command(doctor)
main.add_command(search_command)


@main.command()
@config_option
@redis_option
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
    settings = cli_settings(config_path, redis_url)

    async def use(service: JobService) -> None:
        entries = await service.audit(source_name, limit)
        if as_json:
            echo_json({"entries": [audit_json(e) for e in entries]}, indent=2)
            return
        if not entries:
            echo("no audit entries")
        for e in entries:
            new = f" -> {clean(e.new_id)}" if e.new_id else ""
            echo(
                f"{e.at:%Y-%m-%d %H:%M:%S}Z  {clean(e.source)}  {clean(e.actor)}  "
                f"{clean(e.action)} {clean(e.job_id)}{new}: {clean(e.outcome)}"
            )

    run_with_service(settings, use)


@main.command()
@config_option
@redis_option
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
    settings = cli_settings(
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
    echo_notes(notes)
    if not settings.sources:
        raise click.ClickException(
            "no sources: pass --redis URL or a --config file with [[sources]]"
        )
    server = settings.server
    echo(
        f"jobbridge {__version__}: http://{server.host}:{server.port}{server.prefix}/jobs "
        f"({clean(', '.join(s.name for s in settings.sources))})"
    )
    if settings.auth.tokens and not settings.auth.session_secret:
        echo_notes(
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
@click.option(
    "--redis",
    "redis_url",
    default=None,
    metavar="URL",
    help="Use this Redis instead of starting one; the demo's keys go under 'jobbridge-demo:'.",
)
def demo(port: int, redis_port: int | None, redis_url: str | None) -> None:
    """Run live Autumn, RQ and Celery workers and a producer on one Redis, and the dashboard."""
    from jobbridge.demo import run_demo

    if redis_url is not None and redis_port is not None:
        raise click.UsageError("--redis and --redis-port do not go together")
    code = run_demo(dashboard_port=port, redis_port=redis_port, redis_url=redis_url)
    if code:
        sys.exit(code)
