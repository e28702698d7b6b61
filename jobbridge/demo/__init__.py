"""``jobbridge demo``: live Autumn, RQ and Celery workloads on one Redis, and the dashboard.

Without ``--redis`` it starts a private redis-server (never 6379). Either way it starts, as
child processes, an Autumn emulator worker, an RQ worker with its scheduler, a Celery worker
with events, and one producer that feeds all three (``jobbridge.dev.demo_workloads``), then
serves the dashboard over three sources until Ctrl-C, when it stops every child (whole process
groups), the Redis it started, and removes its temporary directory.

This module only starts processes: it imports neither RQ nor Celery.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import redis

import jobbridge
from jobbridge.cli.common import echo
from jobbridge.demo.children import GRACE_S, Child, Watcher, spawn, stop_all
from jobbridge.demo.ports import (
    is_address_in_use,
    is_free,
    taken_dashboard_port,
    taken_redis_port,
)
from jobbridge.dev.demo_workloads import (
    AUTUMN_QUEUES,
    CELERY_QUEUES,
    RQ_QUEUES,
    SHARED_PREFIX,
    DemoLayout,
)
from jobbridge.dev.private_redis import RedisServer, start_redis_server
from jobbridge.redis_urls import redact_url
from jobbridge.settings import ServerConfig, Settings, SourceConfig

#: exit code of a taken port or a refused option (click's usage-error code)
EXIT_USAGE = 2
#: seconds the workers get to finish their jobs when the demo's own Redis is about to go
PRIVATE_GRACE_S = 3.0
#: the packages the children run
WORKER_PACKAGES = ("rq", "celery")
#: the package the workloads live in
WORKLOADS = "jobbridge.dev.demo_workloads"


class DemoError(Exception):
    """Something that stops the demo before it serves, said in one line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def sources(layout: DemoLayout) -> tuple[SourceConfig, ...]:
    """The demo's three sources, one per system, on the layout's Redis."""
    url, own = layout.redis_url, layout.jobbridge_prefix
    return (
        SourceConfig(
            name="orders",
            system="autumn",
            redis_url=url,
            key_prefix=layout.autumn_prefix,
            queues=AUTUMN_QUEUES,
            jobbridge_prefix=own,
        ),
        SourceConfig(
            name="reports",
            system="rq",
            redis_url=url,
            key_prefix=layout.rq_prefix,
            queues=RQ_QUEUES,
            jobbridge_prefix=own,
        ),
        SourceConfig(
            name="emails",
            system="celery",
            redis_url=url,
            key_prefix=layout.celery_prefix,
            result_key_prefix=layout.celery_prefix,
            queues=CELERY_QUEUES,
            jobbridge_prefix=own,
        ),
    )


def _commands(layout: DemoLayout) -> dict[str, list[str]]:
    """Each child's command line, on this interpreter (the venv's)."""
    python = sys.executable
    return {
        "autumn-worker": [python, "-m", f"{WORKLOADS}.autumn_worker"],
        "rq-worker": [
            python,
            "-m",
            "rq.cli",
            "worker",
            "--with-scheduler",
            "--url",
            layout.redis_url,
            "--name",
            f"demo-reports-{os.getpid()}",
            *RQ_QUEUES,
        ],
        "celery-worker": [
            python,
            "-m",
            "celery",
            "-A",
            f"{WORKLOADS}.celery_app",
            "worker",
            "-E",
            "-l",
            "INFO",
            "-Q",
            ",".join(CELERY_QUEUES),
            "-P",
            "prefork",
            "-c",
            "2",
            "--hostname",
            f"demo-emails-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        "producer": [python, "-m", f"{WORKLOADS}.producer"],
    }


def _child_env(layout: DemoLayout) -> dict[str, str]:
    """The environment of every child: the layout, and this jobbridge first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(layout.env())
    root = str(Path(jobbridge.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _announce_shared(layout: DemoLayout) -> None:
    """Say, before writing anything, which keys the demo writes into someone's Redis."""
    echo(f"jobbridge demo: using {redact_url(layout.redis_url)}; it writes only these keys:")
    patterns = layout.key_patterns()
    for system, keys in patterns.items():
        echo(f"  {system:9} {' '.join(keys)}")
    echo(
        f"  (they stay after the demo stops: delete the keys matching '{SHARED_PREFIX}*' "
        "to remove them)"
    )


def _check_packages() -> None:
    """The workers' packages are there (looked up, not imported: jobbridge never imports them)."""
    missing = [name for name in WORKER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoError(
            f"jobbridge demo: {' and '.join(missing)} not installed; run `make demo`, or "
            "pip install 'jobbridge[demo]'"
        )


def _check_ports(host: str, port: int, redis_port: int | None) -> None:
    if not is_free(host, port):
        raise DemoError(taken_dashboard_port(host, port), EXIT_USAGE)
    if redis_port is None:
        return
    if redis_port == 6379:
        raise DemoError(
            "jobbridge demo: --redis-port 6379 is refused (the usual shared Redis); pick "
            "another, or pass --redis URL to use a Redis of yours",
            EXIT_USAGE,
        )
    if redis_port == port:
        raise DemoError("jobbridge demo: --port and --redis-port are the same port", EXIT_USAGE)
    if not is_free("127.0.0.1", redis_port):
        raise DemoError(taken_redis_port(redis_port), EXIT_USAGE)


def _ping(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise DemoError(f"jobbridge demo: cannot reach {redact_url(url)}: {exc}") from None
    finally:
        client.close()


def _start_redis(port: int | None) -> RedisServer:
    try:
        return start_redis_server(port, own_session=True)
    except RuntimeError as exc:
        if port is not None and not is_free("127.0.0.1", port):
            raise DemoError(taken_redis_port(port), EXIT_USAGE) from None
        raise DemoError(f"jobbridge demo: {exc}") from None


def _stop_redis(server: RedisServer) -> None:
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def _stop_children(children: list[Child], watcher: Watcher, grace_s: float) -> None:
    watcher.stopping.set()
    if not children:
        return
    echo("jobbridge demo: stopping the workers and the producer...", err=True)
    killed = stop_all(children, grace_s)
    if killed:
        echo(f"jobbridge demo: killed after the grace period: {', '.join(killed)}", err=True)


def _serve(settings: Settings) -> None:
    from jobbridge.cli import run_server

    try:
        run_server(settings)
    except OSError as exc:
        if is_address_in_use(exc):
            host, port = settings.server.host, settings.server.port
            raise DemoError(taken_dashboard_port(host, port), EXIT_USAGE) from None
        raise


def run_demo(
    dashboard_port: int = 8080, redis_port: int | None = None, redis_url: str | None = None
) -> int:
    """Run the whole demo in the foreground until interrupted; the exit code."""
    server_config = ServerConfig(port=dashboard_port)
    # Until the server installs its own handlers, a SIGTERM unwinds like a Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _check_ports(server_config.host, dashboard_port, redis_port)
        _check_packages()
        with ExitStack() as stack:
            # A Redis of its own goes away with the demo: no running job there is worth a wait.
            grace_s = PRIVATE_GRACE_S if redis_url is None else GRACE_S
            if redis_url is None:
                server = _start_redis(redis_port)
                stack.callback(_stop_redis, server)
                layout = DemoLayout.private(server.url(0))
                echo(f"jobbridge demo: private Redis on 127.0.0.1:{server.port} (never 6379)")
            else:
                _ping(redis_url)
                layout = DemoLayout.shared(redis_url)
                _announce_shared(layout)
            workdir = Path(tempfile.mkdtemp(prefix="jobbridge-demo-"))
            stack.callback(shutil.rmtree, workdir, True)
            children: list[Child] = []
            watcher = Watcher(children, lambda line: echo(line, err=True))
            stack.callback(_stop_children, children, watcher, grace_s)
            # Runs first: a second Ctrl-C (or a SIGTERM) does not cut the cleanup short.
            stack.callback(_ignore_interrupts)
            env = _child_env(layout)
            for name, argv in _commands(layout).items():
                children.append(spawn(name, argv, env, workdir))
            watcher.start()
            echo(
                "jobbridge demo: started "
                + ", ".join(f"{c.name} (pid {c.process.pid})" for c in children)
            )
            _serve(Settings(server=server_config, sources=sources(layout)))
    except DemoError as exc:
        echo(str(exc), err=True)
        return exc.exit_code
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
