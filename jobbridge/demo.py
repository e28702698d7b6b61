"""``jobbridge demo``: a private Redis with live Autumn traffic, and the dashboard over it.

Runs on jobbridge's emulator of Autumn (``jobbridge.dev.autumn_emulator``). Starts its own
redis-server on a free port (never 6379), seeds a realistic mix of jobs, keeps a producer and a
worker running so the counters move, and serves the dashboard until Ctrl-C.
"""

from __future__ import annotations

import random
import threading

import click
import redis

from jobbridge.dev import autumn_emulator as emulator
from jobbridge.dev.private_redis import start_redis_server
from jobbridge.settings import ServerConfig, Settings, SourceConfig

#: Queues of the demo, highest priority first.
DEMO_QUEUES = ("critical", "default", "low")
#: Above this many waiting jobs, the producer stops adding to the low queue.
LOW_BACKLOG_CAP = 300


def _traffic(url: str, stop: threading.Event) -> None:
    """Enqueue a few jobs a second: mostly fine, some slow, a few that fail."""
    client = redis.Redis.from_url(url)
    app = emulator.Autumn(client)
    rng = random.Random(7)
    n = 0
    while not stop.wait(rng.uniform(0.3, 1.2)):
        n += 1
        ident = {"principal_id": f"user-{rng.randint(100, 140)}", "correlation_id": f"req-{n:06d}"}
        roll = rng.random()
        queue = rng.choice(DEMO_QUEUES)
        if queue == "low" and client.llen(app.queue_key("low")) > LOW_BACKLOG_CAP:
            queue = "default"
        if roll < 0.08:
            app.enqueue(
                "always_fail",
                {**ident, "message": f"upstream returned 502 (#{n})"},
                queue=queue,
                max_attempts=2,
                initial_backoff_ms=2000,
            )
        elif roll < 0.2:
            app.enqueue(
                "generate_report",
                {**ident, "period": "hourly"},
                queue=queue,
                delay_ms=rng.randint(5_000, 120_000),
            )
        elif roll < 0.5:
            app.enqueue("sleep", {**ident, "ms": rng.randint(200, 1500)}, queue=queue)
        else:
            app.enqueue("send_welcome_email", {**ident, "email": f"u{n}@example.com"}, queue=queue)
    client.close()


def _work(url: str, stop: threading.Event) -> None:
    """One worker that serves critical and default; low only builds up a visible backlog."""
    client = redis.Redis.from_url(url)
    handlers = dict(emulator.BUILTIN_HANDLERS)
    handlers["send_welcome_email"] = handlers["noop"]
    handlers["generate_report"] = handlers["noop"]
    worker = emulator.Worker(emulator.Autumn(client), ["critical", "default"], handlers=handlers)
    worker.run(stop=stop)
    client.close()


def run_demo(dashboard_port: int = 8080, redis_port: int | None = None) -> None:
    """Run the whole demo in the foreground until interrupted."""
    from jobbridge.cli import run_server

    server = start_redis_server(redis_port)
    url = server.url(0)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_traffic, args=(url, stop), name="demo-traffic", daemon=True),
        threading.Thread(target=_work, args=(url, stop), name="demo-worker", daemon=True),
    ]
    try:
        client = redis.Redis.from_url(url)
        counts = emulator.seed(client)
        client.close()
        click.echo(
            f"demo Redis on 127.0.0.1:{server.port} seeded: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        for thread in threads:
            thread.start()
        settings = Settings(
            server=ServerConfig(port=dashboard_port),
            sources=(
                SourceConfig(name="orders", system="autumn", redis_url=url, queues=DEMO_QUEUES),
            ),
        )
        run_server(settings)
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=5)
        server.stop()
