"""Key names of RQ's Redis layout under one key prefix (docs/rq.md §1), spelled exactly as rq
does, so one ``RqKeys`` serves any RQ version from 1.15 on and any prefix, braces included.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_KEY_PREFIX = "rq"
DEFAULT_QUEUE = "default"


@dataclass(frozen=True, slots=True)
class RqKeys:
    """Every key name of RQ's layout under ``prefix``."""

    prefix: str = DEFAULT_KEY_PREFIX

    # ------------------------------------------------------------ queues

    @property
    def queues(self) -> str:
        """The set of full queue keys (``rq:queue:default``), not bare names."""
        return f"{self.prefix}:queues"

    @property
    def queue_key_prefix(self) -> str:
        return f"{self.prefix}:queue:"

    def queue(self, name: str) -> str:
        """The list of waiting job ids; RQ RPUSHes and workers pop the left end."""
        return f"{self.queue_key_prefix}{name}"

    def queue_name_of_key(self, key: str) -> str | None:
        """The queue name a member of the queues set names; None when it is not a queue key
        under this prefix."""
        head = self.queue_key_prefix
        if key.startswith(head) and len(key) > len(head):
            return key[len(head) :]
        return None

    @staticmethod
    def queue_name_problem(name: str) -> str | None:
        """Why a queue name read from stored data (a job's ``origin``, a member of the queues
        set) would make keys that are not its own; None when its keys are its own.

        Every key of a queue is ``<prefix>:<kind>:<name>``: a name cannot leave RQ's prefix
        (Redis keys are not paths, so ``..`` and ``/`` mean nothing), and ``:`` inside it is
        RQ's own business, except where the queue list of one name would be the intermediate
        list (or a first-seen key) of another queue."""
        if name.endswith(":intermediate") or ":intermediate:" in name:
            return "its queue list would be the intermediate list of another queue"
        return None

    def intermediate(self, name: str) -> str:
        """Ids a worker moved off the queue (BLMOVE) and has not started yet (RQ 1.15+)."""
        return f"{self.queue(name)}:intermediate"

    # ------------------------------------------------------------ registries

    def registry(self, kind: str, name: str) -> str:
        """``<prefix>:<kind>:<queue>`` for one of the registries RQ keeps per queue, as
        rq/registry.py names them: wip, finished, failed, deferred, scheduled, canceled, ready."""
        return f"{self.prefix}:{kind}:{name}"

    def wip(self, name: str) -> str:
        """StartedJobRegistry: ``<job_id>:<execution_id>`` members (plain ids in 1.x), scored
        by the heartbeat deadline."""
        return self.registry("wip", name)

    def finished(self, name: str) -> str:
        return self.registry("finished", name)

    def failed(self, name: str) -> str:
        return self.registry("failed", name)

    def deferred(self, name: str) -> str:
        return self.registry("deferred", name)

    def scheduled(self, name: str) -> str:
        return self.registry("scheduled", name)

    def canceled(self, name: str) -> str:
        return self.registry("canceled", name)

    def ready(self, name: str) -> str:
        """RQ 3: dependents whose dependencies finished, about to be enqueued."""
        return self.registry("ready", name)

    # ------------------------------------------------------------ jobs

    @property
    def job_key_prefix(self) -> str:
        return f"{self.prefix}:job:"

    def job(self, job_id: str) -> str:
        return f"{self.job_key_prefix}{job_id}"

    def dependents(self, job_id: str) -> str:
        return f"{self.job(job_id)}:dependents"

    def dependencies(self, job_id: str) -> str:
        """This job's dependencies: RQ spells it with a double colon (``rq:job::<id>:…``)."""
        return f"{self.job_key_prefix}:{job_id}:dependencies"

    def executions(self, job_id: str) -> str:
        """The zset of a job's execution ids (RQ 2.0+)."""
        return f"{self.prefix}:executions:{job_id}"

    def execution(self, job_id: str, execution_id: str) -> str:
        """One execution's hash: id, job_id, created_at, last_heartbeat, worker_name."""
        return f"{self.prefix}:execution:{job_id}:{execution_id}"

    def results(self, job_id: str) -> str:
        """The stream of a job's results (RQ 1.12+)."""
        return f"{self.prefix}:results:{job_id}"

    # ------------------------------------------------------------ workers

    @property
    def worker_key_prefix(self) -> str:
        return f"{self.prefix}:worker:"

    def worker(self, name: str) -> str:
        return f"{self.worker_key_prefix}{name}"

    def worker_name_of_key(self, key: str) -> str | None:
        """The worker name a member of the workers set names; None when it is not one."""
        head = self.worker_key_prefix
        if key.startswith(head) and len(key) > len(head):
            return key[len(head) :]
        return None

    def worker_executions(self, name: str) -> str:
        """RQ 3: the set of a worker's running executions (``<job_id>:<execution_id>``)."""
        return f"{self.worker(name)}:executions"

    @property
    def workers(self) -> str:
        """The set of every live worker's key."""
        return f"{self.prefix}:workers"

    def pubsub(self, worker_name: str) -> str:
        """The channel a worker listens on for ``stop-job`` / ``shutdown`` / ``kill-horse``."""
        return f"{self.prefix}:pubsub:{worker_name}"

    # ------------------------------------------------------------ schedulers and cron

    def scheduler(self, name: str) -> str:
        return f"{self.prefix}:scheduler:{name}"

    def cron_job_history(self, name: str) -> str:
        """Zset of the ids of jobs one cron job enqueued, scored by enqueue time."""
        return f"{self.prefix}:cron_job:{name}:jobs"

    @property
    def cron_schedulers(self) -> str:
        """Zset of cron scheduler names, scored by their last heartbeat."""
        return f"{self.prefix}:cron_schedulers"

    def cron_scheduler(self, name: str) -> str:
        """A cron scheduler's hash; its ``cron_jobs`` field is a JSON list of its jobs."""
        return f"{self.prefix}:cron_scheduler:{name}"
