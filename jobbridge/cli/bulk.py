"""``jobbridge retry|discard|cancel --all``: a bulk run in this process (no server needed).

The dry run first (the count, a sample, what will happen), then a confirmation ("Retry 300
jobs? [y/N]", or ``--yes``), then the run in small batches with a progress bar on stderr, then
the count of each outcome and the jobs not acted on, and why.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from jobbridge.bulk.model import BULK_ACTIONS, BulkError, BulkRun, BulkState
from jobbridge.cli.common import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, echo, echo_json
from jobbridge.filters import FIELD_NAMES, FILTERABLE, FilterError, JobFilter, parse_filter
from jobbridge.model import Action, ListName, Outcome
from jobbridge.service import JobService
from jobbridge.text import clean
from jobbridge.web.bulk_api import bulk_json

F = TypeVar("F", bound=Callable[..., Any])

#: seconds between reads of the run's progress
POLL_S = 0.2
#: sample rows printed by a dry run
SHOWN_SAMPLE = 10
#: jobs not acted on printed (every one is in the run, kept a day: the API shows them)
SHOWN_SKIPS = 50

#: what each bulk action does to each matched job
WHAT_HAPPENS = {
    Action.RETRY: "each is enqueued again under a new id",
    Action.DISCARD: "each is removed from the failed list",
    Action.CANCEL: "each is canceled unless a worker took it first",
}
#: the CLI flags of the filter fields (--error-contains, --principal-id, ...)
FILTER_FLAGS = {name: "--" + name.replace("_", "-") for name in FIELD_NAMES}
_FILTER_HELP = {
    "name": "Only jobs whose name contains this (case-insensitive).",
    "queue": "Only jobs of this queue.",
    "error_contains": "Only jobs whose last error contains this (case-insensitive).",
    "since": "Only jobs finished (failed list) or enqueued at or after this: 15m, 1h, 7d "
    "(that long ago) or an ISO 8601 time.",
    "until": "Only jobs finished or enqueued before this (as --since).",
    "principal_id": "Only jobs of this principal id.",
    "correlation_id": "Only jobs of this correlation id (or Celery root_id / RQ group).",
    "worker": "Only jobs whose worker's name contains this.",
}


def bulk_options(action: Action) -> Callable[[F], F]:
    """``--all``, ``--list``, the filter flags, ``--dry-run`` and ``--yes`` of a bulk-capable
    action command (retry, discard, cancel)."""
    default = ListName.ENQUEUED if action is Action.CANCEL else ListName.FAILED

    def apply(function: F) -> F:
        options = [
            click.option(
                "--all",
                "bulk_all",
                is_flag=True,
                help="Act on every job of the list that matches the filter flags (no job ids), "
                "after a dry run and a confirmation.",
            ),
            click.option(
                "--list",
                "bulk_list",
                type=click.Choice([n.value for n in FILTERABLE]),
                default=default.value,
                show_default=True,
                help="With --all: the list whose jobs are taken.",
            ),
            *(
                click.option(FILTER_FLAGS[name], f"filter_{name}", default=None, help=text)
                for name, text in _FILTER_HELP.items()
            ),
            click.option(
                "--dry-run",
                is_flag=True,
                help="With --all: show how many jobs match, a sample and what would happen; "
                "change nothing.",
            ),
            click.option("--yes", is_flag=True, help="With --all: do not ask for confirmation."),
        ]
        for option in reversed(options):
            function = option(function)
        return function

    return apply


def bulk_filter(values: dict[str, str | None]) -> JobFilter:
    """The filter of the flags given.

    Raises:
        click.UsageError: a flag's value is not one (a time that is not a time).
    """
    try:
        return parse_filter({k: v for k, v in values.items() if v is not None})
    except FilterError as exc:
        raise click.UsageError(str(exc)) from None


async def _until_not(service: JobService, source: str, run: BulkRun, state: BulkState) -> BulkRun:
    while run.state is state:
        await asyncio.sleep(POLL_S)
        read = await service.bulk_read(source, run.id)
        if read is None:
            raise BulkError(f"bulk run {run.id} expired or was removed")
        run = read
    return run


def _describe(run: BulkRun) -> str:
    return f"{run.filter.describe()} in the {run.list.value} list of source {run.source}"


def _print_dry_run(run: BulkRun) -> None:
    more = f" (only the first {run.matched:,} are taken)" if run.capped else ""
    echo(
        f"{run.matched:,} jobs match {clean(_describe(run))}{more}; {run.looked_at:,} rows "
        "looked at."
    )
    for row in run.sample[:SHOWN_SAMPLE]:
        error = f"  {clean(row.last_error.splitlines()[-1])[:80]}" if row.last_error else ""
        echo(f"  {clean(row.id)}  {clean(row.name)}  {clean(row.queue)}{error}")
    if run.matched > SHOWN_SAMPLE:
        echo(f"  ... and {run.matched - min(SHOWN_SAMPLE, len(run.sample)):,} more")
    if run.matched:
        echo(
            f"{run.action.value.capitalize()}: {WHAT_HAPPENS[run.action]}, one job at a time "
            "through its own action script; a job that changed meanwhile is refused and listed."
        )


def _print_summary(run: BulkRun) -> None:
    outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(run.outcomes.items())) or "none"
    echo(f"{run.state.value}: acted on {run.acted:,} of {run.matched:,} jobs: {outcomes}")
    if run.canceled_by:
        echo(f"stopped by {clean(run.canceled_by)}; the other jobs are untouched")
    if run.error:
        echo(f"error: {clean(run.error)}")
    if run.skipped:
        echo("not acted on:")
    for skip in run.skipped[:SHOWN_SKIPS]:
        echo(f"  {clean(skip.job_id)}  {skip.outcome}: {clean(skip.message)}")
    if len(run.skipped) > SHOWN_SKIPS:
        echo(
            f"  ... and {len(run.skipped) - SHOWN_SKIPS:,} more (GET "
            f"/api/sources/{clean(run.source)}/bulk/{run.id} lists them)"
        )


def _exit_code(run: BulkRun) -> int:
    if run.outcomes.get(Outcome.UNAVAILABLE.value) or (
        run.error and "unavailable" in run.error.lower()
    ):
        return EXIT_UNAVAILABLE
    if run.state is BulkState.DONE and run.done == run.matched:
        return EXIT_OK
    return EXIT_REFUSED


async def _progress(service: JobService, source: str, run: BulkRun) -> BulkRun:
    """Read the run until it ends, with a progress bar on stderr."""
    label = f"{run.action.value} {run.matched:,} jobs"
    with click.progressbar(length=max(1, run.matched), label=label, file=sys.stderr) as bar:
        shown = 0
        while not run.finished:
            await asyncio.sleep(POLL_S)
            read = await service.bulk_read(source, run.id)
            if read is None:
                raise BulkError(f"bulk run {run.id} expired or was removed")
            run = read
            bar.update(run.acted - shown)
            shown = run.acted
    return run


async def run_bulk(
    service: JobService,
    source: str,
    action: Action,
    which: ListName,
    job_filter: JobFilter,
    actor: str,
    *,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> int:
    """A bulk run from the dry run to its summary; the exit code."""
    assert action in BULK_ACTIONS
    try:
        run = await service.bulk_start(source, action, which, job_filter, actor)
        echo(f"matching {clean(_describe(run))} ...", err=True)
        run = await _until_not(service, source, run, BulkState.MATCHING)
    except BulkError as exc:
        echo(f"refused: {clean(str(exc))}", err=True)
        return EXIT_REFUSED
    if run.state is not BulkState.MATCHED:
        if as_json:
            echo_json(bulk_json(run))
        else:
            _print_summary(run)
        return _exit_code(run)
    if not as_json or dry_run:
        if as_json:
            echo_json(bulk_json(run))
        else:
            _print_dry_run(run)
    if dry_run or run.matched == 0:
        await service.bulk_cancel(source, run.id, actor)
        if not as_json:
            echo("dry run: nothing was changed" if dry_run else "nothing to do")
        return EXIT_OK
    if not yes:
        question = f"{action.value.capitalize()} {run.matched:,} jobs?"
        if not await asyncio.to_thread(click.confirm, question, default=False, err=True):
            await service.bulk_cancel(source, run.id, actor)
            echo("not confirmed: nothing was changed", err=True)
            return EXIT_REFUSED
    try:
        run = await service.bulk_confirm(source, run.id, run.matched, actor)
    except BulkError as exc:
        echo(f"refused: {clean(str(exc))}", err=True)
        return EXIT_REFUSED
    run = await _progress(service, source, run)
    if as_json:
        echo_json(bulk_json(run))
    else:
        _print_summary(run)
    return _exit_code(run)
