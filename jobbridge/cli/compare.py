"""``jobbridge compare``: the overview's comparison table in the terminal (jobbridge.compare)."""

from __future__ import annotations

from pathlib import Path

import click

from jobbridge import compare as comparing
from jobbridge.cli.common import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    cli_settings,
    config_option,
    echo,
    echo_json,
    redis_option,
    run_with_service,
)
from jobbridge.compare import (
    WORST_FIRST,
    CompareRow,
    Comparison,
    Direction,
    RowKind,
    SortKey,
    comparison_json,
)
from jobbridge.render import table, when
from jobbridge.service import JobService
from jobbridge.text import clean, oldest_age

HEADERS = (
    "SOURCE / QUEUE",
    "SYSTEM",
    "DEPTH",
    "OLDEST",
    "TPUT 5M",
    "FAIL 5M",
    "TPUT 60M",
    "FAIL 60M",
    "BUSY / IDLE",
    "OVERDUE",
)


def _row(row: CompareRow) -> list[str]:
    name = clean(row.source, 40) if row.kind is RowKind.SOURCE else "  " + clean(row.queue, 38)
    if row.error is not None:
        # the reason goes under the table, so it does not widen a column
        return [name, row.system, "slow" if row.slow else "down", *["—"] * 7]
    overdue = "—" if row.running_overdue is None else str(row.running_overdue)
    return [
        name,
        row.system,
        str(row.depth),
        oldest_age(row.oldest_enqueued_age_s, row.oldest_enqueued_age_at_least),
        comparing.throughput_text(row.last_5m),
        comparing.failure_text(row.last_5m),
        comparing.throughput_text(row.last_60m),
        comparing.failure_text(row.last_60m),
        comparing.workers_text(row),
        overdue,
    ]


def render_comparison(result: Comparison) -> str:
    """The table, with the order it is in and the problems of rows underneath."""
    order = "worst first" if result.sort is SortKey.WORST else f"by {result.sort} {result.dir}"
    lines = [f"== Compared at {when(result.taken_at)}Z, {order}"]
    lines.append(table(HEADERS, [_row(r) for r in result.rows]) if result.rows else "(none)")
    for row in result.rows:
        if row.error is not None:
            lines.append(f"{clean(row.source, 40)}: {clean(row.error, 300)}")
        for problem in row.problems:
            lines.append(f"problem: {clean(row.source, 40)}: {clean(problem, 300)}")
    if result.sort is SortKey.WORST:
        lines.append(WORST_FIRST)
    return "\n".join(lines)


@click.command()
@config_option
@redis_option
@click.option(
    "--sort",
    type=click.Choice([k.value for k in SortKey]),
    default=SortKey.WORST.value,
    show_default=True,
    help="Sort by this column; each source's queues follow it, sorted the same way. " + WORST_FIRST,
)
@click.option(
    "--dir",
    "direction",
    type=click.Choice([d.value for d in Direction]),
    default=None,
    help="asc or desc (default: names A-Z, numbers and worst largest first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as GET /api/compare).")
def compare(
    config_path: Path | None,
    redis_url: str | None,
    sort: str,
    direction: str | None,
    as_json: bool,
) -> None:
    """Compare every source and queue: depth, oldest waiting age, throughput and failure rate
    over 5 and 60 minutes, workers busy / idle, overdue running jobs. Exit 3 when a source
    could not be read (its row says down or slow; the others are still shown)."""
    settings = cli_settings(config_path, redis_url)
    key = SortKey(sort)
    chosen = Direction(direction) if direction else None

    async def use(service: JobService) -> int:
        result = await comparing.compare(service, key, chosen)
        if as_json:
            echo_json(comparison_json(result), indent=2)
        else:
            echo(render_comparison(result))
        # a script watching for trouble must not read a down source as all clear
        down = any(row.error is not None for row in result.rows)
        return EXIT_UNAVAILABLE if down else EXIT_OK

    raise SystemExit(run_with_service(settings, use))
