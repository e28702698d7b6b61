"""``jobbridge census SOURCE QUEUE``: count a queue's waiting jobs by name (jobbridge.census),
with progress on stderr and the counts as a table (or ``--json``).

It runs the census in this process, under the same lease as a server's census, and stores
the result where the dashboard and the API read it; when another jobbridge runs that queue's
census already, it follows that one's progress instead.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import click

from jobbridge.census.model import (
    CensusResult,
    CensusState,
    CensusUnsupported,
    Counted,
    census_json,
)
from jobbridge.census.runner import plan_for, run_guarded, store_for
from jobbridge.census.store import CensusStore
from jobbridge.cli.common import (
    EXIT_REFUSED,
    UsageError,
    cli_settings,
    config_option,
    echo,
    echo_json,
    redis_option,
    run_with_service,
)
from jobbridge.render import table
from jobbridge.service import JobService
from jobbridge.text import clean

#: seconds between progress lines on stderr
PROGRESS_EVERY_S = 1.0


class Progress:
    """Prints "read N of M (P%)" on stderr, at most once a second (and at the end)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._last = 0.0

    def __call__(self, read: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < PROGRESS_EVERY_S):
            return
        self._last = now
        percent = read * 100 // total if total else 100
        echo(f"census: read {read:,} of {total:,} ({percent}%)", err=True)


async def _follow(store: CensusStore, progress: Progress) -> CensusResult | None:
    """Wait for another process's census of the queue to end, printing its progress."""
    echo("census: another jobbridge runs this queue's census; following it", err=True)
    while True:
        result = await store.read()
        if result is None or result.state is not CensusState.RUNNING:
            return result
        progress(result.read, result.total_at_start)
        await asyncio.sleep(0.5)


async def _census(
    service: JobService, source: str, queue: str, progress: Progress
) -> CensusResult | None:
    adapter = service.adapter(source)
    queues = [q.name for q in (await service.counters(source)).queues]
    if queue not in queues:
        shown = ", ".join(clean(q, 60) for q in queues[:20]) or "none"
        raise UsageError(f"source {clean(source, 60)} has no queue {clean(queue, 60)} ({shown})")
    try:
        plan = plan_for(adapter, queue)
    except CensusUnsupported as exc:
        raise UsageError(clean(exc)) from None
    store = store_for(adapter, queue)
    token = secrets.token_hex(8)
    if not await store.take_lease(token):
        return await _follow(store, progress)
    await run_guarded(plan, store, token, progress)
    return await store.read()


def _rows(items: tuple[Counted, ...], read: int, top: int, other: int) -> list[list[str]]:
    rows = []
    for item in items[:top]:
        share = f"{item.count * 100 / read:.1f}%" if read else "-"
        rows.append([clean(item.name, 80), f"{item.count:,}", share])
    rest = other + sum(c.count for c in items[top:])
    if rest:
        rows.append(["(other)", f"{rest:,}", f"{rest * 100 / read:.1f}%" if read else "-"])
    return rows


def render_census(result: CensusResult, top: int) -> str:
    lines = [
        f"== Census of queue {clean(result.queue, 80)} of {clean(result.source, 80)}: "
        f"{result.state.value}, {result.read:,} jobs read of {result.total_at_start:,} "
        f"waiting at the start, {result.distinct_names:,} names"
    ]
    rows = _rows(result.names, result.read, top, result.other_names)
    lines.append(table(("NAME", "JOBS", "SHARE"), rows))
    if result.principals is not None:
        rows = _rows(result.principals, result.read, top, result.other_principals)
        lines += ["", table(("PRINCIPAL", "JOBS", "SHARE"), rows)]
    if result.missing:
        lines.append(f"missing: {result.missing:,} ids had no record when read")
    if result.note:
        lines.append(f"note: {clean(result.note, 600)}")
    if result.error:
        lines.append(f"error: {clean(result.error, 300)}")
    return "\n".join(lines)


@click.command("census")
@click.argument("source")
@click.argument("queue")
@config_option
@redis_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--top", default=50, show_default=True, help="Names (and principals) shown in the table."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
def census(
    source: str,
    queue: str,
    config_path: Path | None,
    redis_url: str | None,
    as_json: bool,
    top: int,
    quiet: bool,
) -> None:
    """Count the waiting jobs of QUEUE of SOURCE by name (and by principal where the system
    records one), reading the whole queue in pages; the result is kept for a day where the
    dashboard and the API show it."""
    settings = cli_settings(config_path, redis_url)
    progress = Progress(quiet)
    result = run_with_service(settings, lambda service: _census(service, source, queue, progress))
    if result is None:
        raise click.ClickException("the census left no result (its Redis keys expired?)")
    progress(result.read, result.total_at_start, force=True)
    if as_json:
        echo_json(census_json(result))
    else:
        echo(render_census(result, max(1, top)))
    if result.state is not CensusState.DONE:
        raise SystemExit(EXIT_REFUSED)
