"""The CLI against a real Redis with emulator data."""

from __future__ import annotations

import json
import re

import pytest
import redis
from click.testing import CliRunner

from jobbridge.cli import main
from tests.autumn.autumn_fixtures import Autumn, Worker, failing_job

pytestmark = pytest.mark.redis


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def test_snapshot_table_detects_autumn(autumn_emulator, redis_url) -> None:
    autumn_emulator.enqueue("send_email", {"principal_id": "u-1"}, queue="mail")
    failing_job(autumn_emulator, payload={"message": "bad \x1b[31mred"})
    code, out = run("snapshot", "--redis", redis_url)
    assert code == 0, out
    assert "== autumn (autumn)" in out
    assert "enqueued 1" in out and "failed 7d 1" in out
    assert "send_email" in out and "mail" in out
    assert "\x1b" not in out and "bad \ufffd[31mred" in out


def test_snapshot_detects_rq_and_stop_refuses_a_waiting_job(
    sync_redis, rq_workers, redis_url
) -> None:
    from rq import Queue

    from tests.rq import tasks as rq_tasks
    from tests.rq.rq_support import make_failed

    make_failed(sync_redis, rq_workers)
    waiting = Queue("mail", connection=sync_redis).enqueue(rq_tasks.add, 1, 2)
    code, out = run("snapshot", "--redis", redis_url)
    assert code == 0, out
    assert "== rq (rq)" in out
    assert "enqueued 1" in out and "failed 7d n/a (1 kept)" in out
    assert "tests.rq.tasks.add" in out and "-- Workers:" in out
    code, out = run("stop", "--redis", redis_url, waiting.id)
    assert code == 1 and "wrong_state" in out and "not running" in out, out


def test_snapshot_json_and_paging(autumn_emulator, redis_url) -> None:
    for n in range(5):
        autumn_emulator.enqueue("noop", {"n": n})
    result = CliRunner().invoke(
        main,
        ["snapshot", "--redis", redis_url, "--json", "--per-page", "2", "--page", "enqueued=3"],
    )
    assert result.exit_code == 0
    shot = json.loads(result.stdout)["snapshots"][0]
    assert shot["lists"]["enqueued"]["total"] == 5
    assert shot["lists"]["enqueued"]["page"] == 3
    assert len(shot["lists"]["enqueued"]["items"]) == 1


def test_bad_page_argument_is_a_usage_error(redis_url) -> None:
    code, out = run("snapshot", "--redis", redis_url, "--page", "nope=1")
    assert code == 2 and "expected LIST=N" in out


def test_actions_report_outcomes_and_exit_codes(autumn_emulator, redis_url) -> None:
    dead = failing_job(autumn_emulator)
    code, out = run("retry", "--redis", redis_url, "--actor", "tester", dead)
    assert code == 0 and re.search(r"^done: Retried job", out, re.M)
    code, out = run("retry", "--redis", redis_url, dead)
    assert code == 1 and re.search(r"^wrong_state: .* by tester", out, re.M)
    waiting = autumn_emulator.enqueue("noop", {})
    result = CliRunner().invoke(
        main, ["cancel", "--redis", redis_url, "--json", waiting, "missing"]
    )
    assert result.exit_code == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["outcome"] == "canceled" and second["error"] == "not_found"
    code, out = run("audit", "--redis", redis_url)
    assert code == 0 and "tester" in out and "cancel missing: not_found" in out


def test_show_prints_detail(autumn_emulator, redis_url) -> None:
    job = autumn_emulator.enqueue("noop", {"principal_id": "u-9", "x": 1})
    code, out = run("show", "--redis", redis_url, job)
    assert code == 0 and "u-9" in out and '"x": 1' in out
    code, out = run("show", "--redis", redis_url, "nope")
    assert code == 1 and "not found" in out


def test_unreachable_redis_exits_3(redis_server) -> None:
    from jobbridge.dev.private_redis import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    code, out = run("snapshot", "--redis", url)
    assert code == 3 and "unavailable" in out
    code, out = run("doctor", "--redis", url)
    assert code == 3 and "unreachable" in out


def test_doctor_reports_systems(autumn_emulator, redis_url) -> None:
    Autumn(autumn_emulator.client, "billing:jobs").enqueue("noop", {}, delay_ms=60_000)
    autumn_emulator.enqueue("noop", {})
    autumn_emulator.client.sadd("rq:queues", "rq:queue:default")
    autumn_emulator.client.sadd("_kombu.binding.celery", "x")
    code, out = run("doctor", "--redis", redis_url)
    assert code == 0, out
    assert "autumn (prefix 'autumn:jobs'" in out
    assert "autumn (prefix 'billing:jobs'" in out
    rq_line = next(line for line in out.splitlines() if "rq (prefix 'rq'" in line)
    assert "not supported yet" not in rq_line, out
    celery_line = next(line for line in out.splitlines() if "celery" in line)
    assert "not supported yet" not in celery_line and "kombu bindings" in celery_line, out


def test_bad_config_is_one_clear_line(tmp_path) -> None:
    path = tmp_path / "jb.toml"
    path.write_text('[[sources]]\nname = "a"\nsystem = "sidekiq"\nredis_url = "redis://x"\n')
    code, out = run("snapshot", "--config", str(path))
    assert code == 2
    assert "sources[0].system" in out and "sidekiq" in out
    assert len(out.strip().splitlines()) == 1


def test_worker_keeps_working_after_cli_actions(autumn_emulator, redis_url) -> None:
    keep, drop = autumn_emulator.enqueue("noop", {}), autumn_emulator.enqueue("noop", {})
    assert run("cancel", "--redis", redis_url, drop)[0] == 0
    Worker(autumn_emulator, ran_key="ran").run(until_idle=True)
    assert [v.decode() for v in autumn_emulator.client.lrange("ran", 0, -1)] == [keep]


def test_serve_refuses_a_public_address_without_auth(redis_url) -> None:
    code, out = run("serve", "--redis", redis_url, "--host", "0.0.0.0")
    assert code != 0
    assert "refusing to listen on 0.0.0.0 without authentication" in out


@pytest.mark.slow
def test_serve_runs_the_dashboard(autumn_emulator, redis_url) -> None:
    import subprocess
    import sys
    import time
    import urllib.request

    from jobbridge.dev.private_redis import free_port

    autumn_emulator.enqueue("send_email", {})
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jobbridge", "serve", "--redis", redis_url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "jobbridge serve did not start"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/jobs/autumn") as reply:
            page = reply.read().decode()
        assert "send_email" in page
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()


def test_acl_prints_a_user_that_redis_accepts_and_enforces(
    autumn_emulator, redis_url, redis_server
) -> None:
    autumn_emulator.enqueue("noop", {})
    code, out = run("acl", "--redis", redis_url, "--role", "viewer", "--user", "jb-cli-viewer")
    assert code == 0, out
    version, comment, line = [x for x in out.splitlines() if not x.startswith("note:")]
    assert version.startswith(f"# redis://127.0.0.1:{redis_server.port}: Redis ")
    assert comment == f"# redis://127.0.0.1:{redis_server.port}: viewer of autumn; set the " + (
        "password, then run in redis-cli:"
    )
    assert line.startswith("ACL SETUSER jb-cli-viewer reset on >CHANGE-ME ~autumn:jobs:*")
    admin = redis.Redis(port=redis_server.port)
    admin.execute_command(*line.replace(">CHANGE-ME", ">s3cret").split())
    try:
        viewer = redis.Redis.from_url(
            f"redis://jb-cli-viewer:s3cret@127.0.0.1:{redis_server.port}/{redis_url.rsplit('/')[-1]}"
        )
        assert viewer.llen(autumn_emulator.queue_key("default")) == 1
        with pytest.raises(redis.exceptions.NoPermissionError):
            viewer.delete(autumn_emulator.queue_key("default"))
        with pytest.raises(redis.exceptions.NoPermissionError):
            viewer.get("some-other-app:key")
        viewer.close()
    finally:
        admin.execute_command("ACL", "DELUSER", "jb-cli-viewer")
        admin.close()


def test_class7_acl_celery_viewer_line_works_as_printed_and_says_what_it_allows(
    redis_url, redis_server, sync_redis, tmp_path
) -> None:
    import shlex

    sync_redis.set("celery-task-meta-x", "{}")
    sync_redis.lpush("celery", "{}")
    db = redis_url.rsplit("/")[-1]
    source = f'[[sources]]\nname = "tasks"\nsystem = "celery"\nredis_url = "{redis_url}"\n'
    version = str(redis.Redis(port=redis_server.port).info("server")["redis_version"])
    seven = int(version.split(".")[0]) >= 7
    for told in (None, "6.2"):
        path = tmp_path / "celery.toml"
        path.write_text(source)
        args = ["acl", "--config", str(path), "--role", "viewer", "--user", "jb-cli-celery"]
        code, out = run(*args, *(["--redis-version", told] if told else []))
        assert code == 0, out
        lines = [x for x in out.splitlines() if not x.startswith("note:")]
        selectors = seven and told is None
        assert ("# Redis 7 key selectors" in out) is selectors
        assert ("# Redis 6.2 has no key selectors" in out) is (not selectors)
        if told is None:
            assert f": Redis {version}" in lines[0]
        line = lines[-1]
        admin = redis.Redis(port=redis_server.port)
        admin.execute_command(*shlex.split(line.replace(">CHANGE-ME", ">s3cret")))
        try:
            viewer = redis.Redis.from_url(
                f"redis://jb-cli-celery:s3cret@127.0.0.1:{redis_server.port}/{db}"
            )
            assert viewer.get("celery-task-meta-x") == b"{}"
            viewer.set("jobbridge:celery::index:probe", "1")
            viewer.delete("jobbridge:celery::index:probe")
            with pytest.raises(redis.exceptions.NoPermissionError):
                viewer.publish(f"/{db}.celery.pidbox", "x")
            if selectors:
                for command in (
                    ("SET", "celery", "x"),
                    ("LPUSH", "celery", "x"),
                    ("HSET", "unacked", "t", "x"),
                    ("SET", "celery-task-meta-x", "x"),
                ):
                    with pytest.raises(redis.exceptions.NoPermissionError):
                        viewer.execute_command(*command)
            else:
                # what the comment says: writes on every key
                viewer.set("some-other-key", "x")
                viewer.delete("some-other-key")
            viewer.close()
        finally:
            admin.execute_command("ACL", "DELUSER", "jb-cli-celery")
            admin.close()
    assert sync_redis.get("celery-task-meta-x") == b"{}" and sync_redis.llen("celery") == 1


def test_class7_discard_help_says_celery_keeps_its_failure_result() -> None:
    code, out = run("discard", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "Discard terminally failed jobs from the failed list." in text
    assert "For Celery this only hides the task from jobbridge's index" in text
    assert "keeps its FAILURE result (clients still read it)" in text


def test_acl_role_follows_read_only_and_rejects_odd_user_names(tmp_path, redis_url) -> None:
    config = tmp_path / "jobbridge.toml"
    config.write_text(
        "[server]\nread_only = true\n"
        f'[[sources]]\nname = "orders"\nsystem = "autumn"\nredis_url = "{redis_url}"\n'
    )
    code, out = run("acl", "--config", str(config))
    assert code == 0 and "viewer of orders" in out and "+evalsha" not in out
    code, out = run("acl", "--config", str(config), "--role", "operator")
    assert code == 0 and "operator of orders" in out and "+evalsha" in out
    code, out = run("acl", "--config", str(config), "--user", "a b")
    assert code == 2 and "--user" in out


@pytest.mark.slow
def test_snapshot_detects_celery_and_cancel_makes_a_waiting_task_revoked(
    redis_url, sync_redis, tmp_path
) -> None:
    import gc

    from tests.celery.celery_support import (
        celery_workers,
        client_app,
        ran_ids,
        send,
        state_of,
        wait_for_state,
    )

    with client_app(redis_url) as capp, celery_workers(redis_url, tmp_path / "celery") as pool:
        keep = send(capp, "record", "keep").id
        gone = send(capp, "record", "gone").id
        mail = send(capp, "send_email", "ops@example.com").id
        code, out = run("snapshot", "--redis", redis_url)
        assert code == 0, out
        assert "== celery (celery)" in out and "enqueued 3" in out
        assert "celery=2" in out and "mail=1" in out
        assert keep in out and gone in out and mail in out
        assert "examples.celery_app.record" in out

        code, out = run("show", "--redis", redis_url, gone)
        assert code == 0, out
        assert "examples.celery_app.record" in out and '"gone"' in out
        assert "status: enqueued" in out and "actions: cancel" in out

        code, out = run("cancel", "--redis", redis_url, "--actor", "cli-test", gone)
        assert code == 0 and re.search(rf"^done: Canceled job {gone}\.$", out, re.M), out
        assert state_of(capp, gone) == "REVOKED"
        code, out = run("cancel", "--redis", redis_url, gone)
        assert code == 1 and "already canceled by cli-test" in out, out
        code, out = run("show", "--redis", redis_url, gone)
        assert code == 0 and "status: canceled (REVOKED)" in out, out
        assert "canceled by cli-test" in out

        # A worker started now runs what is left of the queue, never the canceled task.
        pool.start(("celery",), pool="solo")
        wait_for_state(capp, keep, "SUCCESS", workers=pool)
        assert ran_ids(sync_redis) == [keep]
        assert state_of(capp, gone) == "REVOKED"
        assert sync_redis.llen("celery") == 0 and sync_redis.llen("mail") == 1
    # Whatever the commands left unclosed is reported here, not in the next test.
    gc.collect()


def test_show_of_a_canceled_celery_task_still_names_it(redis_url) -> None:
    """After a cancel, Celery's result is the REVOKED meta jobbridge wrote (no name, queue or
    arguments in it); the copy the cancel kept of the task should still name it."""
    import gc

    from tests.celery.celery_support import client_app, send

    with client_app(redis_url) as capp:
        gone = send(capp, "add", 1, 2).id
    code, out = run("cancel", "--redis", redis_url, gone)
    assert code == 0, out
    code, out = run("show", "--redis", redis_url, gone)
    assert code == 0 and "status: canceled (REVOKED)" in out, out
    gc.collect()
    assert re.search(r"^ +name: examples\.celery_app\.add$", out, re.M), out
    assert re.search(r"^ +queue: celery$", out, re.M), out


@pytest.mark.slow
def test_snapshot_detects_celery_whose_tasks_all_go_to_named_queues(redis_url) -> None:
    """A Celery app that routes every task to a queue of its own never declares the default
    ``celery`` queue, so ``_kombu.binding.celery`` never exists; its ``_kombu.binding.<q>``
    keys (and the pidbox and event bindings of any worker) still say Celery."""
    import gc

    from tests.celery.celery_support import client_app, send

    with client_app(redis_url) as capp:
        mail = send(capp, "send_email", "ops@example.com").id
    code, out = run("snapshot", "--redis", redis_url)
    gc.collect()
    assert code == 0, out
    assert "== celery (celery)" in out and mail in out, out


def test_show_of_a_failed_rq_job_reads_plainly(sync_redis, rq_workers, redis_url) -> None:
    from rq import Queue

    from tests.rq import tasks as rq_tasks
    from tests.rq.rq_support import make_failed

    (failed,) = make_failed(sync_redis, rq_workers)
    waiting = Queue("default", connection=sync_redis).enqueue(rq_tasks.add, 1, 2)
    code, out = run("show", "--redis", redis_url, failed)
    assert code == 0, out
    assert "None" not in out and "(json (json))" not in out
    assert out.count("Traceback (most recent call last)") == 1, out
    assert "ValueError: boom 0" in out
    worker = Queue("default", connection=sync_redis).fetch_job(failed).worker_name  # type: ignore[union-attr]
    assert re.search(rf"^\s+worker: {re.escape(worker)}$", out, re.M), out
    code, out = run("show", "--redis", redis_url, waiting.id)
    assert code == 0, out
    assert "finished at: not finished" in out and "None" not in out
    code, out = run("snapshot", "--redis", redis_url)
    assert code == 0 and "ValueError: boom 0" in out and "Traceback" not in out, out


def test_compare_exits_3_when_a_source_is_down(autumn_emulator, redis_url, tmp_path) -> None:
    from jobbridge.dev.private_redis import free_port

    autumn_emulator.enqueue("noop", {})
    path = tmp_path / "jb.toml"
    path.write_text(
        '[[sources]]\nname = "up"\nsystem = "autumn"\n'
        f'redis_url = "{redis_url}"\n'
        '[[sources]]\nname = "gone"\nsystem = "autumn"\n'
        f'redis_url = "redis://127.0.0.1:{free_port()}/0"\n'
    )
    code, out = run("compare", "--config", str(path))
    assert code == 3, out
    assert re.search(r"^gone\s+autumn\s+down", out, re.M), out
    assert re.search(r"^up\s+autumn\s+1\s", out, re.M), out
    code, out = run("compare", "--redis", redis_url)
    assert code == 0, out
