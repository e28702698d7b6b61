"""``jobbridge search Q``: every job of every source matching an id, a correlation id, a
principal id or a job name (jobbridge.search), as a table or ``--json``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from jobbridge.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    UsageError,
    cli_settings,
    config_option,
    echo,
    echo_json,
    redis_option,
    run_with_service,
)
from jobbridge.model import reachable_id
from jobbridge.render import table
from jobbridge.search import (
    BadQuery,
    Match,
    SearchResult,
    SourceCovered,
    clean_query,
    covered_json,
    find_id,
    match_json,
    search,
)
from jobbridge.service import JobService
from jobbridge.text import clean, quoted

HEADERS = ("SOURCE", "SYSTEM", "STATUS", "ID", "NAME", "QUEUE", "MATCHED")


def job_path(prefix: str, job: Match) -> str:
    """The job page's path on a dashboard served with ``prefix`` (the query form ``job?id=``
    for every id, so any id a route can take works)."""
    row = job.job
    if not reachable_id(row.id):
        return ""
    path = f"{prefix}/jobs/{_quote(row.source)}/job?id={_quote(row.id)}"
    return path + (f"&entry={_quote(row.entry)}" if row.entry is not None else "")


def _quote(value: str) -> str:
    # ids read from Redis may carry bytes that are not UTF-8 (surrogate escapes): kept as such
    return quote(value.encode("utf-8", errors="surrogateescape"), safe="")


def _row(found: Match) -> list[str]:
    job = found.job
    return [
        clean(job.source, 24),
        clean(job.system, 10),
        job.status.value,
        clean(job.id, 40),
        clean(job.name or "?", 32),
        clean(job.queue, 16),
        clean(found.matched, 20),
    ]


def covered_line(covered: SourceCovered) -> str:
    """One source's part of what was searched, in a line."""
    head = f"{clean(covered.source)} ({clean(covered.system)})"
    if covered.error is not None:
        return f"{head}: not searched: {clean(covered.error)}"
    parts = [
        f"{r.name.value} {r.read}" + (f" of {r.total}" if r.cut_short else "")
        for r in covered.lists
    ]
    looked = "the id looked up; " if covered.looked_up_id else ""
    cut = " (cut short: a job beyond these is found by its id only)" if covered.cut_short else ""
    return f"{head}: {looked}{', '.join(parts)}{cut}"


def render_result(result: SearchResult) -> str:
    """The table of matches, then what each source's search read."""
    lines = []
    if result.matches:
        lines.append(table(HEADERS, [_row(m) for m in result.matches]))
    else:
        lines.append(f"no job matches {clean(result.query, 200)} in what was searched")
    if result.covered.capped:
        lines.append(f"(the first {result.covered.max_results} matches; more matched)")
    lines.append("")
    lines.append("searched:")
    lines += [f"  {covered_line(c)}" for c in result.covered.sources]
    return "\n".join(lines)


@click.command("search")
@config_option
@redis_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("query")
def search_command(
    config_path: Path | None, redis_url: str | None, as_json: bool, query: str
) -> None:
    """Find jobs in every source by job id, correlation id, principal id or (part of) a job
    name; exit 1 when nothing matches. Bounded: the id's own record plus the first page of
    each list (the histories up to their bound); it says what it read."""
    try:
        clean_query(query)
    except BadQuery as exc:
        raise UsageError(str(exc)) from None
    settings = cli_settings(config_path, redis_url)
    prefix = settings.server.prefix

    async def use(service: JobService) -> int:
        result = await search(service, query)
        if as_json:
            echo_json(
                {
                    "query": result.query,
                    "items": [match_json(m, job_path(prefix, m)) for m in result.matches],
                    "covered": covered_json(result.covered),
                },
                indent=2,
            )
        else:
            echo(render_result(result))
        return EXIT_OK if result.matches else EXIT_REFUSED

    raise SystemExit(run_with_service(settings, use))


async def where_is(service: JobService, job_id: str, entry: str | None) -> str:
    """The one source that has ``job_id`` (``show`` without ``--source``).

    Raises:
        click.ClickException: no source has it (naming those that could not be read), or
            several do (naming them: pass ``--source``).
    """
    reads = await find_id(service, job_id, entry=entry)
    having = [r.name for r in reads if r.value is not None]
    if len(having) == 1:
        return having[0]
    shown = quoted(job_id, 200)
    if having:
        raise click.ClickException(
            f"job {shown} is in {len(having)} sources ({', '.join(having)}): "
            "pass --source NAME to show one"
        )
    failed = [f"{r.name} ({r.error})" for r in reads if r.error is not None]
    unread = f"; not searched: {', '.join(failed)}" if failed else ""
    raise click.ClickException(f"job {shown} not found in any source{unread}")
