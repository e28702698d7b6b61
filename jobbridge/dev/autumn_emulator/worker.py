"""The worker side of the emulator: claims, runs handlers, settles, recovers stale claims and
promotes delayed and blocked jobs (docs/autumn.md §3)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

from jobbridge.dev.autumn_emulator.producer import Autumn
from jobbridge.dev.autumn_emulator.records import (
    BLOCKED_INTERVAL_S,
    CLAIM_SCAN_LIMIT,
    CONCURRENCY_REQUEUE_DELAY_MS,
    DEFAULT_QUEUE,
    HISTORY_LIMIT,
    IDLE_SLEEP_MAX_S,
    PROMOTION_BATCH,
    STALE_BATCH,
    STALE_INTERVAL_S,
    U32_MAX,
    U64_MAX,
    UNIQUE_LOCK_TTL_BACKSTOP_MS,
    UNTIL_IDLE_SLEEP_S,
    as_str,
    canonical_json,
    decode_record,
    normalize_queue_name,
)
from jobbridge.dev.autumn_emulator.scripts import (
    CLAIM_LUA,
    MALFORMED_LUA,
    PROMOTE_BLOCKED_LUA,
    PROMOTE_DELAYED_LUA,
    RECOVER_LUA,
    SETTLE_LUA,
)

# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------


class Panic(Exception):
    """Raise from a handler to take the panic path (dead-letter whatever attempts remain)."""


Handler = Callable[[dict[str, Any]], object]


def _payload(record: dict[str, Any]) -> dict[str, Any]:
    payload = record.get("payload")
    return payload if isinstance(payload, dict) else {}


def noop(record: dict[str, Any]) -> None:
    return None


def _fail_times(record: dict[str, Any]) -> None:
    if record["attempt"] <= int(_payload(record).get("fail_times", 0)):
        raise RuntimeError(f"failing on purpose (attempt {record['attempt']})")


def _always_fail(record: dict[str, Any]) -> None:
    raise RuntimeError(_payload(record).get("message", "boom"))


def _panic(record: dict[str, Any]) -> None:
    raise Panic(_payload(record).get("message", "explicit panic"))


def _sleep(record: dict[str, Any]) -> None:
    time.sleep(float(_payload(record).get("ms", 0)) / 1000)


BUILTIN_HANDLERS: dict[str, Handler] = {
    "noop": noop,
    "fail_times": _fail_times,
    "always_fail": _always_fail,
    "panic": _panic,
    "sleep": _sleep,
}


# ---------------------------------------------------------------------------------------------
# Worker
# ---------------------------------------------------------------------------------------------


def _backoff_ms(initial: int, attempt: int) -> int:
    """initial * 2^(attempt-1), saturating at u64::MAX."""
    shift = max(0, attempt - 1)
    if initial == 0:
        return 0
    if shift >= 64:
        return U64_MAX
    return min(initial << shift, U64_MAX)


class Worker:
    """One Autumn worker task: maintenance, claim, run, settle."""

    def __init__(
        self,
        autumn: Autumn,
        queues: list[str] | None = None,
        *,
        handlers: dict[str, Handler] | None = None,
        worker_id: str | None = None,
        ran_key: str | None = None,
    ) -> None:
        self.autumn = autumn
        self.client = autumn.client
        self.queues = [normalize_queue_name(q) for q in (queues or [DEFAULT_QUEUE])]
        self.handlers = BUILTIN_HANDLERS if handlers is None else handlers
        self.worker_id = worker_id or f"{os.getpid()}:{uuid.uuid4()}"
        self.ran_key = ran_key
        self.log: Callable[[str], None] = lambda message: None
        self._claim = self.client.register_script(CLAIM_LUA)
        self._settle = self.client.register_script(SETTLE_LUA)
        self._recover = self.client.register_script(RECOVER_LUA)
        self._promote_delayed = self.client.register_script(PROMOTE_DELAYED_LUA)
        self._promote_blocked = self.client.register_script(PROMOTE_BLOCKED_LUA)
        self._malformed = self.client.register_script(MALFORMED_LUA)

    # -- maintenance ---------------------------------------------------------------------------
    def promote_delayed(self) -> int:
        """Move due retries and delayed jobs to their queues, rewriting each record as serde
        does: two reads, then one atomic script that re-checks what they saw."""
        a = self.autumn
        now = a.now_ms()
        due = [
            as_str(m)
            for m in self.client.zrangebyscore(a.delayed_key, "-inf", now, 0, PROMOTION_BATCH)
        ]
        if not due:
            return 0
        raws = self.client.mget([a.record_key(job_id) for job_id in due])
        args: list[str | bytes] = [a.record_prefix, a.queue_key(DEFAULT_QUEUE), str(now)]
        for job_id, raw in zip(due, raws, strict=True):
            seen = b"" if raw is None else raw  # bytes as stored: compared byte for byte
            record, _ = decode_record(raw)
            rewrite = ""
            if record is not None:
                record.update(
                    enqueued_at_ms=now,
                    started_at_ms=None,
                    finished_at_ms=None,
                    claimed_by=None,
                    claimed_at_ms=None,
                )
                rewrite = a.encode(record)
            args += [job_id, seen, rewrite]
        return int(self._promote_delayed(keys=[a.delayed_key], args=args))

    def promote_blocked(self) -> int:
        return self._promote(self._promote_blocked, self.autumn.blocked_key)

    def _promote(self, script: Any, zset_key: str) -> int:
        """Move due ids of a zset to their queues (one atomic script); how many moved."""
        a = self.autumn
        return int(
            script(
                keys=[zset_key],
                args=[a.now_ms(), PROMOTION_BATCH, a.record_prefix, a.queue_key(DEFAULT_QUEUE)],
            )
        )

    def recover_stale(self) -> int:
        """Requeue or dead-letter claims whose deadline passed; the number recovered."""
        a = self.autumn
        now = a.now_ms()
        ids = [
            as_str(m)
            for m in self.client.zrangebyscore(
                a.processing_key, "-inf", now, start=0, num=STALE_BATCH
            )
        ]
        if not ids:
            return 0
        raws = self.client.mget([a.record_key(i) for i in ids])
        recovered = 0
        for job_id, raw in zip(ids, raws, strict=True):
            record, _error = decode_record(raw)
            if record is None:
                # No counter decrement (docs/autumn.md §3.5, Stale recovery).
                self.client.zrem(a.processing_key, job_id)
                continue
            claimed_at = record.get("claimed_at_ms")
            if claimed_at is None or claimed_at + a.visibility_timeout_ms > now:
                continue
            if self._recover_one(record, now) == 1:
                recovered += 1
        return recovered

    def _recover_one(self, record: dict[str, Any], now: int) -> int:
        a = self.autumn
        claimed_by = record.get("claimed_by") or "unknown worker"
        claimed_at = record["claimed_at_ms"]
        max_attempts = record["max_attempts"] or a.max_attempts
        new = dict(record)
        new["max_attempts"] = max_attempts
        new["last_error"] = f"visibility timeout expired for claim by {claimed_by} at {claimed_at}"
        new["finished_at_ms"] = now
        new["claimed_by"] = None
        new["claimed_at_ms"] = None
        if record["attempt"] < max_attempts:
            mode = "requeue"
            new["attempt"] = min(record["attempt"] + 1, U32_MAX)
        else:
            mode = "dead"
        result = int(
            self._recover(
                keys=[
                    a.record_key(record["id"]),
                    a.processing_key,
                    a.queue_key(record.get("queue") or DEFAULT_QUEUE),
                    a.dead_key,
                    a.dead_record_key(record["id"]),
                    a.lock_key_for(record),
                    a.counter_key_for(record),
                ],
                args=[
                    record["id"],
                    record.get("claimed_by") or "",
                    claimed_at,
                    mode,
                    a.encode(new),
                    "1" if record.get("concurrency_limit") is not None else "0",
                    "1" if _releases_lock(record, "dead") else "0",
                    _requeue_lock_action(record),
                    a.dead_record_prefix,
                    HISTORY_LIMIT,
                    UNIQUE_LOCK_TTL_BACKSTOP_MS,
                ],
            )
        )
        if result == 0:
            self.log(f"stale recovery skipped {record['id']}: claim changed")
        return result

    # -- claim ---------------------------------------------------------------------------------
    def claim(self) -> dict[str, Any] | None:
        """Claim the next ready job (strict queue priority); None when nothing is ready.

        Malformed records met on the way take the malformed path (docs/autumn.md §3.4) and
        the scan goes on.
        """
        a = self.autumn
        for _ in range(64):
            reply = self._claim(
                keys=[a.processing_key, a.blocked_key, *(a.queue_key(q) for q in self.queues)],
                args=[
                    a.record_prefix,
                    a.unique_prefix,
                    a.concurrency_prefix,
                    self.worker_id,
                    a.now_ms(),
                    a.visibility_timeout_ms,
                    CLAIM_SCAN_LIMIT,
                    CONCURRENCY_REQUEUE_DELAY_MS,
                    UNIQUE_LOCK_TTL_BACKSTOP_MS,
                ],
            )
            if not reply:
                return None
            _, job_id, body = [as_str(part) for part in cast(list[Any], reply)]
            record, error = decode_record(body)
            if record is None:
                self.dead_letter_malformed(job_id, body, error or "invalid record")
                continue
            return record
        return None

    def dead_letter_malformed(self, job_id: str, raw: str, error: str) -> None:
        """Push {"id","error","raw_payload"} to P:dead and drop the processing entry
        (docs/autumn.md §3.4, Malformed records)."""
        a = self.autumn
        entry = (
            f'{{"id":{canonical_json(job_id)},'
            f'"error":{canonical_json("invalid job record: " + error)},'
            f'"raw_payload":{canonical_json(raw)}}}'
        )
        self._malformed(keys=[a.dead_key, a.processing_key], args=[entry, job_id])

    # -- settle --------------------------------------------------------------------------------
    def settle(self, record: dict[str, Any], outcome: str, error: str | None = None) -> int:
        """Settle a claimed record.

        outcome: "success"; "failure" (retry or dead by attempts); "panic" (dead now, error is
        the panic message); "invalid" (dead now with ``error``, finished_at_ms left unset).
        Returns the script's result: 0 claim changed, 1 settled, 2 retry dropped.
        """
        a = self.autumn
        now = a.now_ms()
        max_attempts = record["max_attempts"] or a.max_attempts
        new = dict(record)
        new["max_attempts"] = max_attempts
        new["claimed_by"] = None
        new["claimed_at_ms"] = None
        due = 0
        if outcome == "success":
            mode = "success"
            new["finished_at_ms"] = now
            new["last_error"] = None
        elif outcome == "failure":
            new["finished_at_ms"] = now
            new["last_error"] = error
            if record["attempt"] < max_attempts:
                mode = "retry"
                due = min(
                    now + _backoff_ms(record["initial_backoff_ms"], record["attempt"]), U64_MAX
                )
                new["attempt"] = min(record["attempt"] + 1, U32_MAX)
            else:
                mode = "dead"
        elif outcome == "panic":
            mode = "dead"
            new["finished_at_ms"] = now
            new["last_error"] = f"job handler panicked: {error}"
        elif outcome == "invalid":
            mode = "dead"
            new["last_error"] = error
        else:
            raise ValueError(f"unknown outcome {outcome!r}")
        result = int(
            self._settle(
                keys=[
                    a.record_key(record["id"]),
                    a.processing_key,
                    a.completed_key,
                    a.delayed_key,
                    a.dead_key,
                    a.dead_record_key(record["id"]),
                    a.lock_key_for(record),
                    a.counter_key_for(record),
                ],
                args=[
                    record["id"],
                    record.get("claimed_by") or "",
                    "" if record.get("claimed_at_ms") is None else record["claimed_at_ms"],
                    mode,
                    a.encode(new),
                    due,
                    "1" if record.get("concurrency_limit") is not None else "0",
                    "1" if _releases_lock(record, mode) else "0",
                    _requeue_lock_action(record),
                    a.dead_record_prefix,
                    HISTORY_LIMIT,
                    UNIQUE_LOCK_TTL_BACKSTOP_MS,
                ],
            )
        )
        if result == 0:
            self.log(f"settle of {record['id']} skipped: claim changed")
        return result

    def execute(self, record: dict[str, Any]) -> int:
        """Run the handler of a claimed record and settle it."""
        handler = self.handlers.get(record["name"])
        if handler is None:
            return self.settle(record, "invalid", "unknown job type")
        if record["attempt"] == 0:
            return self.settle(record, "invalid", "invalid job payload: attempt must be >= 1")
        if self.ran_key:
            self.client.rpush(self.ran_key, record["id"])
        try:
            handler(record)
        except Panic as exc:
            return self.settle(record, "panic", str(exc))
        except Exception as exc:
            return self.settle(record, "failure", str(exc) or type(exc).__name__)
        return self.settle(record, "success")

    # -- loop ----------------------------------------------------------------------------------
    def maintain(self) -> None:
        """Autumn's per-iteration maintenance order: retries → stale → blocked."""
        self.promote_delayed()
        self.recover_stale()
        self.promote_blocked()

    def run_once(self) -> bool:
        """One loop iteration with every maintenance step; True if a job was processed."""
        self.maintain()
        record = self.claim()
        if record is None:
            return False
        self.execute(record)
        return True

    def is_idle(self, horizon_ms: int = 1000) -> bool:
        """No ready or parked work for this worker and no retry due within ``horizon_ms``."""
        a = self.autumn
        if any(self.client.llen(a.queue_key(q)) for q in self.queues):
            return False
        if self.client.zcard(a.blocked_key):
            return False
        return not self.client.zcount(a.delayed_key, "-inf", a.now_ms() + horizon_ms)

    def run(
        self,
        *,
        max_seconds: float | None = None,
        until_idle: bool = False,
        stop: threading.Event | None = None,
    ) -> int:
        """Loop until stopped, out of time, or (``until_idle``) idle; the jobs processed."""
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        retry_interval = max(1, min(self.autumn.initial_backoff_ms, 1000)) / 1000
        idle_sleep = UNTIL_IDLE_SLEEP_S if until_idle else min(retry_interval, IDLE_SLEEP_MAX_S)
        next_retry = next_stale = next_blocked = 0.0
        processed = 0
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            now = time.monotonic()
            if now >= next_retry:
                self.promote_delayed()
                next_retry = now + retry_interval
            if now >= next_stale:
                self.recover_stale()
                next_stale = now + STALE_INTERVAL_S
            if now >= next_blocked:
                self.promote_blocked()
                next_blocked = now + BLOCKED_INTERVAL_S
            record = self.claim()
            if record is not None:
                self.execute(record)
                processed += 1
                continue
            if until_idle and self.is_idle():
                break
            stop.wait(idle_sleep)
        return processed


def _releases_lock(record: dict[str, Any], mode: str) -> bool:
    return (
        record.get("unique_key") is not None
        and record.get("unique_window") != "ttl"
        and mode in ("success", "dead")
    )


def _requeue_lock_action(record: dict[str, Any]) -> str:
    if record.get("unique_key") is None:
        return ""
    window = record.get("unique_window")
    return window if window in ("pending", "running") else ""
