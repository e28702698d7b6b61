"""Live workloads of ``jobbridge demo``: an Autumn emulator worker, RQ tasks, a Celery app and
one producer that feeds all three, each run as a child process of the demo.

This module is the layout they share (which Redis, which key prefixes, which queues), passed to
the children through the environment. It imports neither RQ nor Celery: only the modules that
a worker or the producer runs do (``rq_tasks``, ``celery_app``, ``producer``), and nothing
outside this package imports those (the import contracts in pyproject.toml).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: the environment variables the children read their layout from
ENV_REDIS_URL = "JOBBRIDGE_DEMO_REDIS_URL"
ENV_AUTUMN_PREFIX = "JOBBRIDGE_DEMO_AUTUMN_PREFIX"
ENV_CELERY_PREFIX = "JOBBRIDGE_DEMO_CELERY_PREFIX"
#: RQ reads its key prefix from this variable, before it is imported (rq.defaults)
ENV_RQ_PREFIX = "RQ_KEY_PREFIX"

#: Autumn's queues, highest priority first
AUTUMN_QUEUES = ("critical", "default", "low")
#: RQ's queues, in the order its worker listens
RQ_QUEUES = ("high", "default", "low")
#: Celery's queues (``celery`` is Celery's default; ``bulk`` gets the slow sends)
CELERY_QUEUES = ("celery", "bulk")
#: the prefix of every key the demo writes into a Redis it did not start (``--redis``)
SHARED_PREFIX = "jobbridge-demo:"


@dataclass(frozen=True, slots=True)
class DemoLayout:
    """Where the demo's three systems keep their keys."""

    #: the Redis (and database) of all three systems
    redis_url: str
    #: Autumn's ``jobs.redis.key_prefix``
    autumn_prefix: str = "autumn:jobs"
    #: RQ's ``RQ_KEY_PREFIX``
    rq_prefix: str = "rq"
    #: kombu's ``global_keyprefix``, for the broker and the result backend alike ("" = none)
    celery_prefix: str = ""
    #: the prefix of jobbridge's own keys (audit, lifecycle, the Celery index)
    jobbridge_prefix: str = "jobbridge:"

    @classmethod
    def private(cls, redis_url: str) -> DemoLayout:
        """The systems' default keys: the demo's own Redis holds nothing else."""
        return cls(redis_url)

    @classmethod
    def shared(cls, redis_url: str) -> DemoLayout:
        """Every key under :data:`SHARED_PREFIX`, apart from a Redis someone else uses."""
        return cls(
            redis_url,
            autumn_prefix=f"{SHARED_PREFIX}autumn",
            rq_prefix=f"{SHARED_PREFIX}rq",
            celery_prefix=f"{SHARED_PREFIX}celery:",
            jobbridge_prefix=f"{SHARED_PREFIX}jobbridge:",
        )

    def env(self) -> dict[str, str]:
        """The variables that tell a child this layout."""
        return {
            ENV_REDIS_URL: self.redis_url,
            ENV_AUTUMN_PREFIX: self.autumn_prefix,
            ENV_RQ_PREFIX: self.rq_prefix,
            ENV_CELERY_PREFIX: self.celery_prefix,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DemoLayout:
        """The layout a child was started with (see :meth:`env`)."""
        env = os.environ if environ is None else environ
        url = env.get(ENV_REDIS_URL)
        if not url:
            raise SystemExit(f"{ENV_REDIS_URL} is not set: run this through `jobbridge demo`")
        default = cls(url)
        return cls(
            url,
            autumn_prefix=env.get(ENV_AUTUMN_PREFIX, default.autumn_prefix),
            rq_prefix=env.get(ENV_RQ_PREFIX, default.rq_prefix),
            celery_prefix=env.get(ENV_CELERY_PREFIX, default.celery_prefix),
        )

    def key_patterns(self) -> dict[str, tuple[str, ...]]:
        """What each system writes, as key patterns (for the ``--redis`` announcement; in the
        private layout Celery's pattern would be everything)."""
        celery = self.celery_prefix
        return {
            "autumn": (f"{self.autumn_prefix}:*",),
            "rq": (f"{self.rq_prefix}:*",),
            # kombu puts the prefix before every broker key and channel, and Celery's result
            # backend before every meta: all of them, so one pattern
            "celery": (f"{celery}*",),
            "jobbridge": (f"{self.jobbridge_prefix}*",),
        }
