"""The demo's Autumn workers: ``python -m jobbridge.dev.demo_workloads.autumn_worker``.

Two emulator workers serve ``critical`` and ``default``; nothing serves ``low``, so a backlog
(and an oldest waiting age) builds up there, capped by the producer. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from typing import Any

import redis

from jobbridge.dev import autumn_emulator as emulator
from jobbridge.dev.demo_workloads import AUTUMN_QUEUES, DemoLayout

#: the queues the workers serve (``low`` is left to build up)
SERVED_QUEUES = list(AUTUMN_QUEUES[:2])
WORKERS = 2


def _quick(record: dict[str, Any]) -> None:
    time.sleep(random.uniform(0.05, 0.3))


def handlers() -> dict[str, emulator.Handler]:
    """The emulator's built-in handlers plus the demo's job names."""
    found = dict(emulator.BUILTIN_HANDLERS)
    for name in (
        "send_welcome_email",
        "generate_report",
        "charge_invoice",
        "sync_crm_contact",
        "rebuild_search_index",
    ):
        found[name] = _quick
    return found


def _serve(layout: DemoLayout, stop: threading.Event) -> None:
    client = redis.Redis.from_url(layout.redis_url)
    try:
        app = emulator.Autumn(client, layout.autumn_prefix)
        emulator.Worker(app, SERVED_QUEUES, handlers=handlers()).run(stop=stop)
    finally:
        client.close()


def main() -> int:
    """Run the workers until a signal arrives."""
    layout = DemoLayout.from_env()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threads = [
        threading.Thread(target=_serve, args=(layout, stop), name=f"autumn-worker-{n}")
        for n in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
