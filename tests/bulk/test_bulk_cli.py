"""``jobbridge retry|discard|cancel --all``: the dry run, the confirmation, the progress bar, the
summary and the exit codes, run in-process against a real Redis (Autumn's emulator)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from jobbridge.cli import main
from tests.autumn.autumn_fixtures import Autumn, failing_job

pytestmark = pytest.mark.redis


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def seed(app: Autumn) -> tuple[list[str], list[str]]:
    outage = [failing_job(app, payload={"message": "ConnectionError: refused"}) for _ in range(30)]
    other = [failing_job(app, payload={"message": "ValueError: bad"}) for _ in range(20)]
    return outage, other


def dead(app: Autumn) -> int:
    return int(app.client.llen(app.dead_key))


def test_a_dry_run_shows_the_count_and_a_sample_and_changes_nothing(
    autumn_emulator: Autumn, redis_url: str
) -> None:
    outage, _ = seed(autumn_emulator)
    result = run(
        "retry", "--all", "--redis", redis_url, "--error-contains", "connectionerror", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "30 jobs match error~connectionerror in the failed list" in result.output
    assert outage[0] in result.output or outage[-1] in result.output
    assert "... and 20 more" in result.output
    assert "enqueued again under a new id" in result.output
    assert "dry run: nothing was changed" in result.output
    assert dead(autumn_emulator) == 50
    assert autumn_emulator.client.llen(autumn_emulator.queue_key("default")) == 0


def test_without_yes_it_asks_and_a_no_changes_nothing(
    autumn_emulator: Autumn, redis_url: str
) -> None:
    seed(autumn_emulator)
    args = ("retry", "--all", "--redis", redis_url, "--error-contains", "ConnectionError")
    result = run(*args, stdin="n\n")
    assert result.exit_code == 1, result.output
    assert "Retry 30 jobs? [y/N]" in result.output
    assert "not confirmed: nothing was changed" in result.output
    assert autumn_emulator.client.llen(autumn_emulator.queue_key("default")) == 0
    result = run(*args, stdin="y\n")
    assert result.exit_code == 0, result.output
    assert "done: acted on 30 of 30 jobs: done 30" in result.output
    assert autumn_emulator.client.llen(autumn_emulator.queue_key("default")) == 30


def test_yes_runs_with_a_progress_bar_and_a_summary(
    autumn_emulator: Autumn, redis_url: str
) -> None:
    seed(autumn_emulator)
    discard = ("discard", "--all", "--redis", redis_url, "--error-contains", "ValueError")
    result = run(*discard, "--yes")
    assert result.exit_code == 0, result.output
    assert "discard 20 jobs" in result.output  # the progress bar's label
    assert "done: acted on 20 of 20 jobs: done 20" in result.output
    assert dead(autumn_emulator) == 30
    # Nothing left to discard: exit 0, nothing to do.
    result = run(*discard, "--yes")
    assert result.exit_code == 0, result.output
    assert "0 jobs match" in result.output and "nothing to do" in result.output


def test_emptying_a_queue_is_a_bulk_cancel_of_its_waiting_jobs(
    autumn_emulator: Autumn, redis_url: str
) -> None:
    waiting = [autumn_emulator.enqueue("noop", {"n": n}, queue="reports") for n in range(12)]
    kept = [autumn_emulator.enqueue("noop", {"n": n}) for n in range(3)]
    assert all(waiting) and all(kept)
    result = run("cancel", "--all", "--redis", redis_url, "--queue", "reports", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert '"outcomes": {"done": 12}' in result.output
    assert autumn_emulator.client.llen(autumn_emulator.queue_key("reports")) == 0
    assert autumn_emulator.client.llen(autumn_emulator.queue_key("default")) == 3


def test_the_flags_must_fit_together(autumn_emulator: Autumn, redis_url: str) -> None:
    seed(autumn_emulator)
    for args, words in (
        (("retry", "--all", "some-id"), "give job ids or --all, not both"),
        (("retry", "--name", "x", "some-id"), "--name only with --all"),
        (("retry",), "give job ids, or --all with filter flags"),
        (("retry", "--all", "--since", "yesterday"), "since: 'yesterday' is not a time"),
    ):
        result = run(*args, "--redis", redis_url)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output, (args, result.output)
    assert dead(autumn_emulator) == 50


def test_read_only_mode_refuses_the_run(autumn_emulator: Autumn, redis_url: str, tmp_path) -> None:
    seed(autumn_emulator)
    config = tmp_path / "jobbridge.toml"
    config.write_text(
        f'[server]\nread_only = true\n\n[[sources]]\nname = "orders"\nsystem = "autumn"\n'
        f'redis_url = "{redis_url}"\n'
    )
    result = run("retry", "--all", "--config", str(config), "--yes")
    assert result.exit_code == 1, result.output
    assert "read-only" in result.output
    assert dead(autumn_emulator) == 50


def test_an_unreachable_redis_exits_3() -> None:
    result = run("retry", "--all", "--redis", "redis://127.0.0.1:1/0", "--yes")
    assert result.exit_code == 3, result.output
