"""A faithful Python emulator of Autumn's Redis job runtime (`jobs.backend = "redis"`).

python -m jobbridge.dev.autumn_emulator worker --redis URL [--prefix P] [--queues a,b]
    [--visibility-timeout-ms N] [--max-seconds S] [--until-idle] [--ran-key K]
python -m jobbridge.dev.autumn_emulator seed --redis URL [--prefix P] [--no-reset]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterable

import redis

from jobbridge.dev.autumn_emulator.producer import Autumn
from jobbridge.dev.autumn_emulator.records import DEFAULT_PREFIX, DEFAULT_QUEUE
from jobbridge.dev.autumn_emulator.seed import seed
from jobbridge.dev.autumn_emulator.worker import Worker

# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobbridge.dev.autumn_emulator", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run one Autumn worker")
    worker.add_argument("--redis", required=True, help="redis:// URL")
    worker.add_argument("--prefix", default=DEFAULT_PREFIX)
    worker.add_argument(
        "--queues", default=DEFAULT_QUEUE, help="comma-separated, highest priority first"
    )
    worker.add_argument("--visibility-timeout-ms", type=int, default=30000)
    worker.add_argument("--max-attempts", type=int, default=5)
    worker.add_argument("--initial-backoff-ms", type=int, default=250)
    worker.add_argument("--max-seconds", type=float, default=None)
    worker.add_argument("--until-idle", action="store_true")
    worker.add_argument("--ran-key", default=None)
    worker.add_argument("--worker-id", default=None)
    seed_cmd = sub.add_parser("seed", help="write a realistic demo mix of jobs")
    seed_cmd.add_argument("--redis", required=True, help="redis:// URL")
    seed_cmd.add_argument("--prefix", default=DEFAULT_PREFIX)
    seed_cmd.add_argument(
        "--no-reset", action="store_true", help="keep existing keys under the prefix"
    )
    return parser


def _split_queues(text: str) -> Iterable[str]:
    return [q for q in (part.strip() for part in text.split(",")) if q] or [DEFAULT_QUEUE]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    client = redis.Redis.from_url(args.redis)
    try:
        if args.command == "seed":
            started = time.monotonic()
            counts = seed(client, args.prefix, reset=not args.no_reset)
            elapsed = time.monotonic() - started
            print(json.dumps({"prefix": args.prefix, "seconds": round(elapsed, 3), **counts}))
            return 0
        app = Autumn(
            client,
            args.prefix,
            visibility_timeout_ms=args.visibility_timeout_ms,
            max_attempts=args.max_attempts,
            initial_backoff_ms=args.initial_backoff_ms,
        )
        worker = Worker(
            app, list(_split_queues(args.queues)), worker_id=args.worker_id, ran_key=args.ran_key
        )
        worker.log = lambda message: print(message, file=sys.stderr, flush=True)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        processed = worker.run(max_seconds=args.max_seconds, until_idle=args.until_idle, stop=stop)
        print(json.dumps({"worker_id": worker.worker_id, "processed": processed}), flush=True)
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
