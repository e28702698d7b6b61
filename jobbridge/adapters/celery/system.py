"""Celery's entry in the registry of systems (jobbridge.adapters.registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobbridge.adapters.celery import census, grants
from jobbridge.adapters.detection import any_key, probe
from jobbridge.adapters.registry import (
    AclGrants,
    ActionSpec,
    AttemptsSpec,
    ConfigKey,
    ConfirmStep,
    Detected,
    SearchSpec,
    SystemSpec,
)
from jobbridge.errors import ConfigError
from jobbridge.model import Action, Worker
from jobbridge.redis_urls import parse_redis_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobbridge.adapters.contract import JobAdapter
    from jobbridge.settings import SourceConfig

#: kombu binding sets of a Celery broker: the default queue's, and its workers' remote
#: control and events exchanges'.
CELERY_MARKERS = (
    "_kombu.binding.celery",
    "_kombu.binding.celery.pidbox",
    "_kombu.binding.celeryev",
)


def build(config: SourceConfig, client: Redis, results: Redis | None) -> JobAdapter:
    from jobbridge.adapters.celery.adapter import CeleryAdapter

    return CeleryAdapter(
        client,
        source=config.name,
        results=results,
        global_keyprefix=config.effective_key_prefix,
        result_keyprefix=config.result_key_prefix,
        queues=config.queues,
        jobbridge_prefix=config.jobbridge_prefix,
        sep=config.sep,
        priority_steps=config.priority_steps,
    )


async def detect(client: Redis) -> list[Detected]:
    """Celery's default queue's binding, or, when every task goes to a named queue, the
    bindings its workers always declare (remote control and events)."""
    found = any(await probe(client, *CELERY_MARKERS))
    if not found:
        found = await any_key(client, "_kombu.binding.*")
    if not found:
        return []
    results = await any_key(client, "celery-task-meta-*")
    where = "results in the same database" if results else "no results seen in this database"
    return [Detected("celery", "", f"kombu bindings (_kombu.binding.*); {where}")]


async def doctor(config: SourceConfig, client: Redis, results: Redis | None) -> list[str]:
    """What doctor says of a Celery source: priority lists its configured steps do not name,
    results not where it looks, results without ``result_extended``, workers that send no
    task events."""
    from jobbridge.adapters.celery import event_checks, priority_lists, result_checks
    from jobbridge.adapters.celery.keys import PRIORITY_STEPS, CeleryKeys

    steps = config.priority_steps
    keys = CeleryKeys(config.effective_key_prefix, config.sep, steps or PRIORITY_STEPS)
    # unconfigured steps are read as found: only configured ones can disagree with the broker
    lines = await priority_lists.check(client, keys) if steps is not None else []
    lines += await result_checks.check(config, client, results)
    return lines + await event_checks.check(config, client)


def _parse_result_prefix(value: object, origin: str) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ConfigError(f"{origin}: must be a string of at most 200 characters")
    return value


def _parse_sep(value: object, origin: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 16:
        raise ConfigError(f"{origin}: must be a string of 1 to 16 characters (kombu's sep)")
    return value


def _parse_steps(value: object, origin: str) -> tuple[int, ...]:
    steps = value if isinstance(value, list) else None
    if (
        not steps
        or len(steps) > 10
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 9 for v in steps)
        or steps != sorted(set(steps))
    ):
        raise ConfigError(
            f"{origin}: must be an ascending list of distinct integers 0..9 (kombu's "
            "priority_steps, default [0, 3, 6, 9])"
        )
    return tuple(steps)


_REVOKE_TEXT = (
    "Broadcast Celery's <em>revoke</em> for this task? Every worker online now discards it "
    "instead of running it (it ends as <em>REVOKED</em>); a running task goes on unless "
    "terminated."
)


def worker_busy(worker: Worker) -> bool | None:
    """Celery's workers are "online" or "offline": an online one executing a task (its
    heartbeat's ``active``) is busy, else idle; an offline one is neither."""
    if worker.state != "online":
        return None
    return (worker.active or 0) > 0


SYSTEM = SystemSpec(
    name="celery",
    title="Celery",
    default_key_prefix=None,
    build=build,
    detect=detect,
    doctor=doctor,
    config_keys=(
        ConfigKey(name="result_backend_url", parse=parse_redis_url, field="result_backend_url"),
        ConfigKey(name="result_key_prefix", parse=_parse_result_prefix, field="result_key_prefix"),
        ConfigKey(name="sep", parse=_parse_sep, field="sep"),
        ConfigKey(name="priority_steps", parse=_parse_steps, field="priority_steps"),
    ),
    url_aliases=("broker_url",),
    free_key_prefix=True,
    acl=AclGrants(
        commands=grants.CELERY_COMMANDS,
        channels=grants.channels,
        viewer_rules=grants.viewer_rules,
        viewer_notes=grants.viewer_notes,
    ),
    actions=(
        ActionSpec(
            action=Action.DISCARD,
            confirm=ConfirmStep(
                summary="Hide from jobbridge…",
                html="Hide this task from jobbridge's failed list? Only jobbridge's own index "
                "forgets it: Celery's result backend still holds its <em>FAILURE</em> result, "
                "which clients (<code>AsyncResult</code>) still read, until Celery's "
                "<code>result_expires</code>. Nothing in Celery is changed.",
                button="Hide from jobbridge's list",
            ),
            cli_note="For Celery this only hides the task from jobbridge's index: Celery's "
            "result backend keeps its FAILURE result (clients still read it) until "
            "result_expires.",
            api_note="For a Celery source this only hides the task from jobbridge's index: "
            "Celery's result backend keeps its FAILURE result (clients still read it) until "
            "result_expires.",
        ),
        ActionSpec(
            action=Action.STOP,
            confirm=ConfirmStep(
                summary="Terminate…",
                html="Broadcast Celery's <em>revoke</em> with <em>terminate</em>? The worker "
                "running this task kills it (SIGTERM); it ends as <em>REVOKED</em>.",
                button="Terminate task",
            ),
            cli_note="Celery's revoke with terminate: the task ends REVOKED",
            api_note="Celery's revoke with terminate, the task then ends REVOKED",
        ),
        ActionSpec(
            action=Action.REVOKE,
            confirm=ConfirmStep(summary="Revoke…", html=_REVOKE_TEXT, button="Revoke task"),
            cli_note="Broadcast Celery's revoke for tasks a worker holds (prefetched, or waiting "
            "for an eta): workers online now discard them.",
            api_note="Broadcast Celery's revoke for a task a worker holds (prefetched, waiting "
            "for its eta): workers online now discard it.",
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
        "attempt",
        "worker",
        "last_error",
        "payload_preview",
        "extra",
        "entry",
        "principal_id",
        "correlation_id",
    ),
    attempts=AttemptsSpec(
        label="Attempt",
        means="the run a task is on: Celery's retries + 1 (its max_retries lives in the "
        "task's code, not in Redis)",
    ),
    # Celery's task states, beside jobbridge's
    status_words=(
        ("PENDING", "enqueued"),
        ("RECEIVED", "running"),
        ("STARTED", "running"),
        ("RETRY", "retrying"),
        ("SUCCESS", "completed"),
        ("FAILURE", "failed"),
        ("REVOKED", "canceled"),
    ),
    worker_busy=worker_busy,
    search=SearchSpec(
        # a workflow's tasks share its root, a chord's members their parent and group
        extras=("root_id", "parent_id", "group"),
        covers="the first 100 messages of its broker queues, 100 tasks held for later and 100 "
        "running, the newest 250 succeeded and failed tasks of jobbridge's result index "
        "(it holds what it has seen in the last 7 days), and the id's own result",
    ),
    census=census.plan,
)
