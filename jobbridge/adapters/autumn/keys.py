"""Key names under one Autumn prefix."""

from __future__ import annotations

from dataclasses import dataclass

from jobbridge.adapters.fields import glob_escape

DEFAULT_KEY_PREFIX = "autumn:jobs"
DEFAULT_QUEUE = "default"
#: the prefix of the id given to a history entry that no job id names safely: the digest of
#: its exact bytes (see AutumnAdapter for when)
ENTRY_ID_PREFIX = "entry:"


@dataclass(frozen=True, slots=True)
class AutumnKeys:
    """Key names under one Autumn prefix (jobbridge's own: jobbridge.adapters.operator_log)."""

    prefix: str

    def queue(self, name: str) -> str:
        name = name.strip()
        if not name or name == DEFAULT_QUEUE:
            return f"{self.prefix}:queue"
        return f"{self.prefix}:queue:{name}"

    def record(self, job_id: str) -> str:
        return f"{self.prefix}:record:{job_id}"

    def dead_record(self, job_id: str) -> str:
        return f"{self.prefix}:dead-record:{job_id}"

    def unique(self, lock: tuple[str, str] | None) -> str:
        # Autumn passes this placeholder for jobs without a lock; it is never written.
        if lock is None:
            return f"{self.prefix}:unique:-"
        return f"{self.prefix}:unique:{lock[0]}:{lock[1]}"

    @property
    def processing(self) -> str:
        return f"{self.prefix}:processing"

    @property
    def delayed(self) -> str:
        return f"{self.prefix}:delayed"

    @property
    def blocked(self) -> str:
        return f"{self.prefix}:blocked"

    @property
    def completed(self) -> str:
        return f"{self.prefix}:completed"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    @property
    def queue_pattern(self) -> str:
        """The SCAN pattern of queue keys; the prefix is escaped, since Autumn lets it hold
        ``*?[]\\`` like any other character."""
        return glob_escape(self.prefix) + ":queue*"

    def queue_name_of_key(self, key: str) -> str | None:
        if key == f"{self.prefix}:queue":
            return DEFAULT_QUEUE
        head = f"{self.prefix}:queue:"
        if key.startswith(head) and len(key) > len(head):
            return key[len(head) :]
        return None


def entry_id(digest: bytes) -> str:
    """The id of a history entry known only by its bytes."""
    return ENTRY_ID_PREFIX + digest.hex()


def entry_digest(job_id: str) -> bytes | None:
    """The digest an entry id names, or None when ``job_id`` is not one."""
    if not job_id.startswith(ENTRY_ID_PREFIX):
        return None
    try:
        digest = bytes.fromhex(job_id[len(ENTRY_ID_PREFIX) :])
    except ValueError:
        return None
    return digest if len(digest) == 16 else None
