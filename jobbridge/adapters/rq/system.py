"""RQ's entry in the registry of systems (jobbridge.adapters.registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobbridge.adapters.detection import any_key, probe
from jobbridge.adapters.fields import glob_escape
from jobbridge.adapters.registry import (
    AclGrants,
    ActionSpec,
    AttemptsSpec,
    ConfirmStep,
    Detected,
    SearchSpec,
    SystemSpec,
)
from jobbridge.adapters.rq import census
from jobbridge.adapters.rq.keys import DEFAULT_KEY_PREFIX
from jobbridge.model import Action, Worker

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.contract import JobAdapter
    from jobbridge.settings import Role, SourceConfig


def build(config: SourceConfig, client: Redis, results: Redis | None) -> JobAdapter:
    from jobbridge.adapters.rq.adapter import RqAdapter

    return RqAdapter(
        client,
        source=config.name,
        key_prefix=config.effective_key_prefix,
        queues=config.queues,
        jobbridge_prefix=config.jobbridge_prefix,
    )


#: Keys RQ writes before anything is enqueued too: its queues, and its registered workers.
_MARKERS = ("queues", "workers")


async def detect(client: Redis) -> list[Detected]:
    """RQ under its default prefix: its set of queues, its set of workers (a worker registers
    before the first job is enqueued), else any key under the prefix (one bounded SCAN)."""
    keys = [f"{DEFAULT_KEY_PREFIX}:{marker}" for marker in _MARKERS]
    for key, found in zip(keys, await probe(client, *keys), strict=True):
        if found:
            return [Detected("rq", DEFAULT_KEY_PREFIX, f"key {key}")]
    pattern = f"{glob_escape(DEFAULT_KEY_PREFIX)}:*"
    if await any_key(client, pattern):
        return [Detected("rq", DEFAULT_KEY_PREFIX, f"keys {pattern}")]
    return []


def channels(source: SourceConfig, role: Role) -> list[str]:
    """The workers' command channels: an operator's stop action publishes there."""
    if role != "operator":
        return []
    return [f"{glob_escape(source.effective_key_prefix)}:pubsub:*"]


def worker_busy(worker: Worker) -> bool | None:
    """RQ's worker states: "busy" (or a current job) is busy; "idle", and "started" (set
    before its first wait for work), are idle; "suspended" and "dead" are neither."""
    if worker.current_job is not None or worker.state == "busy":
        return True
    return False if worker.state in ("idle", "started") else None


SYSTEM = SystemSpec(
    name="rq",
    title="RQ",
    default_key_prefix=DEFAULT_KEY_PREFIX,
    build=build,
    detect=detect,
    acl=AclGrants(channels=channels),
    actions=(
        ActionSpec(
            action=Action.STOP,
            confirm=ConfirmStep(
                summary="Stop…",
                html="Ask worker <code>{worker}</code> to kill this running job? It ends as "
                "<em>stopped</em> among the failed jobs.",
                button="Stop job",
            ),
            cli_note="RQ's stop-job command: the job ends as stopped, among the failed jobs",
            api_note="RQ's stop-job command: the job then ends as stopped",
        ),
    ),
    columns=(
        "id",
        "name",
        "queue",
        "status",
        "raw_status",
        "enqueued_at",
        "scheduled_for",
        "started_at",
        "finished_at",
        "worker",
        "last_error",
        "payload_preview",
        "extra",
        "attempt",
        "max_attempts",
        "retries_left",
        "retries_max",
        "waits_for",
        "principal_id",
        "correlation_id",
    ),
    # list_columns: every one; RQ keeps no principal of its own, but a keyword argument
    # principal_id / correlation_id fills those columns where producers pass one
    attempts=AttemptsSpec(
        label="Retries",
        means="retries left of the job's Retry policy (RQ counts retries_left down and keeps "
        "no maximum: it is known while the job has not run); a job that returned Retry "
        "counts its runs",
    ),
    # RQ's job statuses (rq/job.py), beside jobbridge's; "intermediate" is a job a worker
    # took off its queue and has not started
    status_words=(
        ("created", "enqueued"),
        ("queued", "enqueued"),
        ("ready_to_enqueue", "enqueued"),
        ("scheduled", "scheduled"),
        ("scheduled", "retrying"),
        ("deferred", "blocked"),
        ("rate_limited", "blocked"),
        ("intermediate", "running"),
        ("started", "running"),
        ("finished", "completed"),
        ("failed", "failed"),
        ("stopped", "failed"),
        ("canceled", "canceled"),
    ),
    worker_busy=worker_busy,
    search=SearchSpec(
        # a job group's id names its jobs together, as a correlation id does
        extras=("group",),
        covers="the first 100 jobs of its queues and of the scheduled, started and canceled "
        "registries, the newest 250 of the finished and failed registries (RQ keeps them "
        "until their TTL, so a busy queue holds more), and the id's own hash",
    ),
    census=census.plan,
)
