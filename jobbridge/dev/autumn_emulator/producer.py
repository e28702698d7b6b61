"""The producer side of the emulator: ``Autumn`` enqueues jobs and reads its own keys."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, cast

import redis

from jobbridge.dev.autumn_emulator.records import (
    DEFAULT_PREFIX,
    DEFAULT_QUEUE,
    UNIQUE_LOCK_TTL_BACKSTOP_MS,
    UNIQUE_WINDOWS,
    as_str,
    concurrency_scope_for,
    encode_record,
    normalize_queue_name,
    queue_key,
    unique_key_for,
    wall_clock_ms,
)
from jobbridge.dev.autumn_emulator.scripts import ENQUEUE_LUA

# ---------------------------------------------------------------------------------------------
# Producer
# ---------------------------------------------------------------------------------------------


class Autumn:
    """One Autumn app's view of the Redis runtime: keys, config and the producer side."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        *,
        visibility_timeout_ms: int = 30000,
        max_attempts: int = 5,
        initial_backoff_ms: int = 250,
        clock: Callable[[], int] | None = None,
        telemetry: bool = False,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.visibility_timeout_ms = visibility_timeout_ms
        self.max_attempts = max_attempts
        self.initial_backoff_ms = initial_backoff_ms
        self.clock = clock or wall_clock_ms
        #: Emulate a build with the ``telemetry-otlp`` feature (traceparent/tracestate nulls).
        self.telemetry = telemetry
        self.processing_key = f"{prefix}:processing"
        self.delayed_key = f"{prefix}:delayed"
        self.blocked_key = f"{prefix}:blocked"
        self.completed_key = f"{prefix}:completed"
        self.dead_key = f"{prefix}:dead"
        self.record_prefix = f"{prefix}:record:"
        self.dead_record_prefix = f"{prefix}:dead-record:"
        self.unique_prefix = f"{prefix}:unique:"
        self.concurrency_prefix = f"{prefix}:concurrency:"
        self._enqueue = client.register_script(ENQUEUE_LUA)

    # -- keys ----------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock())

    def queue_key(self, queue: str) -> str:
        return queue_key(self.prefix, queue)

    def record_key(self, job_id: str) -> str:
        return self.record_prefix + job_id

    def dead_record_key(self, job_id: str) -> str:
        return self.dead_record_prefix + job_id

    def unique_lock_key(self, name: str, unique_key: str | None) -> str:
        if unique_key is None:
            return f"{self.unique_prefix}-"
        return f"{self.unique_prefix}{name}:{unique_key}"

    def concurrency_counter_key(self, name: str, scope: str | None) -> str:
        return f"{self.concurrency_prefix}{name}:{scope or ''}"

    def lock_key_for(self, record: dict[str, Any]) -> str:
        return self.unique_lock_key(record["name"], record.get("unique_key"))

    def counter_key_for(self, record: dict[str, Any]) -> str:
        return self.concurrency_counter_key(record["name"], record.get("concurrency_key"))

    def encode(self, record: dict[str, Any]) -> str:
        return encode_record(record, telemetry=self.telemetry)

    # -- producer ------------------------------------------------------------------------------
    def enqueue(
        self,
        name: str,
        payload: object = None,
        *,
        queue: str = "default",
        delay_ms: int = 0,
        run_at_ms: int | None = None,
        max_attempts: int | None = None,
        initial_backoff_ms: int | None = None,
        unique: str | None = None,
        unique_by: list[str] | None = None,
        unique_ttl_ms: int | None = None,
        concurrency_limit: int | None = None,
        concurrency_scope_field: str | None = None,
        job_id: str | None = None,
    ) -> str | None:
        """Enqueue one job; the id, or None when a held unique lock coalesced it."""
        now = self.now_ms()
        due = run_at_ms if run_at_ms is not None else now + max(0, delay_ms)
        delayed = due > now
        if unique is None and (unique_by or unique_ttl_ms is not None):
            unique = "ttl" if unique_ttl_ms is not None else "running"
        if unique is not None and unique not in UNIQUE_WINDOWS:
            raise ValueError(f"unique window must be one of {UNIQUE_WINDOWS}, not {unique!r}")
        if unique == "ttl" and unique_ttl_ms is None:
            raise ValueError("unique='ttl' needs unique_ttl_ms")
        job_id = job_id or str(uuid.uuid4())
        record: dict[str, Any] = {
            "id": job_id,
            "name": name,
            "queue": normalize_queue_name(queue),
            "payload": payload,
            "attempt": 1,
            "max_attempts": self.max_attempts if max_attempts is None else max_attempts,
            "initial_backoff_ms": (
                self.initial_backoff_ms if initial_backoff_ms is None else initial_backoff_ms
            ),
            "enqueued_at_ms": now,
            "started_at_ms": None,
            "finished_at_ms": None,
            "claimed_by": None,
            "claimed_at_ms": None,
            "last_error": None,
        }
        lock_ttl = UNIQUE_LOCK_TTL_BACKSTOP_MS
        if unique is not None:
            record["unique_key"] = unique_key_for(payload, unique_by)
            record["unique_window"] = unique
            if unique == "ttl":
                lock_ttl = int(unique_ttl_ms or 0)
            elif delayed:
                lock_ttl = max(lock_ttl, due - now + UNIQUE_LOCK_TTL_BACKSTOP_MS)
        if concurrency_limit is not None:
            if concurrency_scope_field is not None:
                record["concurrency_key"] = concurrency_scope_for(payload, concurrency_scope_field)
            record["concurrency_limit"] = concurrency_limit
        result = self._enqueue(
            keys=[
                self.lock_key_for(record),
                self.record_key(job_id),
                self.delayed_key,
                self.queue_key(record["queue"]),
            ],
            args=[
                job_id,
                self.encode(record),
                "1" if unique is not None else "0",
                lock_ttl,
                "1" if delayed else "0",
                due,
            ],
        )
        return job_id if int(result) == 1 else None

    # -- reading -------------------------------------------------------------------------------
    def record_raw(self, job_id: str) -> str | None:
        raw = self.client.get(self.record_key(job_id))
        return None if raw is None else as_str(raw)

    def record(self, job_id: str) -> dict[str, Any] | None:
        raw = self.record_raw(job_id)
        return None if raw is None else json.loads(raw)

    def _list(self, key: str) -> list[str]:
        return [as_str(v) for v in self.client.lrange(key, 0, -1)]

    def queue_ids(self, queue: str = DEFAULT_QUEUE) -> list[str]:
        """Ready ids of one queue, index 0 = newest (next to claim is the last)."""
        return self._list(self.queue_key(queue))

    def completed_raw(self) -> list[str]:
        return self._list(self.completed_key)

    def completed_entries(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.completed_raw()]

    def dead_raw(self) -> list[str]:
        return self._list(self.dead_key)

    def dead_entries(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.dead_raw()]

    def dead_record_raw(self, job_id: str) -> str | None:
        raw = self.client.get(self.dead_record_key(job_id))
        return None if raw is None else as_str(raw)

    def _zset(self, key: str) -> list[tuple[str, int]]:
        rows = cast(list[tuple[Any, Any]], self.client.zrange(key, 0, -1, withscores=True))
        return [(as_str(member), int(score)) for member, score in rows]

    def delayed_entries(self) -> list[tuple[str, int]]:
        return self._zset(self.delayed_key)

    def processing_entries(self) -> list[tuple[str, int]]:
        return self._zset(self.processing_key)

    def blocked_entries(self) -> list[tuple[str, int]]:
        return self._zset(self.blocked_key)
