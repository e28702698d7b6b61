"""A faithful Python emulator of Autumn's Redis job runtime (`jobs.backend = "redis"`).

It follows the Redis backend of Autumn's job runtime (the keys, the record schema and field
order, and the transitions, each one atomic Lua script as Autumn's own: enqueue, claim, settle,
stale recovery, delayed and blocked promotion), as docs/autumn.md states them; the "§" marks
below name sections of that page. jobbridge's tests use it both as the producer
(``Autumn.enqueue``) and as the worker (``Worker``), and ``jobbridge demo`` for its traffic.

Two deliberate differences from Autumn:

* Delayed promotion is one atomic script that also rewrites the record (docs/autumn.md §5.10,
  Autumn's own promotion race: Autumn's rewrite runs non-atomically after the script). The
  rewrite keeps the field order of docs/autumn.md §2.1.
* Handlers are Python callables that receive the decoded record dict (payload under
  ``"payload"``). Raising fails the attempt; raising :class:`Panic` takes the panic path.

Command line::

    python -m jobbridge.dev.autumn_emulator worker --redis URL [--prefix P] [--queues a,b]
        [--visibility-timeout-ms N] [--max-seconds S] [--until-idle] [--ran-key K]
    python -m jobbridge.dev.autumn_emulator seed --redis URL [--prefix P] [--no-reset]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, cast

import redis

DEFAULT_PREFIX = "autumn:jobs"
DEFAULT_QUEUE = "default"
HISTORY_LIMIT = 1000  # DEFAULT_JOB_ADMIN_HISTORY_LIMIT
CLAIM_SCAN_LIMIT = 8  # REDIS_CLAIM_SCAN_LIMIT, per queue
PROMOTION_BATCH = 64
STALE_BATCH = 64
CONCURRENCY_REQUEUE_DELAY_MS = 100
UNIQUE_LOCK_TTL_BACKSTOP_MS = 86_400_000
STALE_INTERVAL_S = 1.0
BLOCKED_INTERVAL_S = 0.1
IDLE_SLEEP_MAX_S = 0.2
UNTIL_IDLE_SLEEP_S = 0.02
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1

#: Field order of RedisJobRecord (docs/autumn.md §2.1). The ``_SKIP`` fields are written only
#: when set.
RECORD_FIELDS = (
    "id",
    "name",
    "queue",
    "payload",
    "attempt",
    "max_attempts",
    "initial_backoff_ms",
    "enqueued_at_ms",
    "started_at_ms",
    "finished_at_ms",
    "claimed_by",
    "claimed_at_ms",
    "last_error",
)
SKIP_IF_NONE_FIELDS = ("unique_key", "unique_window", "concurrency_key", "concurrency_limit")
TELEMETRY_FIELDS = ("traceparent", "tracestate")
UNIQUE_WINDOWS = ("pending", "running", "ttl")

# ---------------------------------------------------------------------------------------------
# Canonical JSON (serde_json) and derived values
# ---------------------------------------------------------------------------------------------


def _ryu(value: float) -> str:
    """Format a finite float the way serde_json (ryu) does: ``1e20``, ``1.0``, ``1e-7``."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest round-tripping digits, like ryu; only the layout differs.
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent = int(exponent) + (len(digit_tuple) - len(digits))
    length = len(digits)
    point = length + exponent  # position of the decimal point relative to the digits
    if 0 <= exponent and point <= 16:
        text = digits + "0" * exponent + ".0"
    elif 0 < point <= 16:
        text = digits[:point] + "." + digits[point:]
    elif -5 < point <= 0:
        text = "0." + "0" * (-point) + digits
    elif length == 1:
        text = f"{digits}e{point - 1}"
    else:
        text = f"{digits[0]}.{digits[1:]}e{point - 1}"
    return sign + text


def canonical_json(value: object) -> str:
    """serde_json's compact output of a ``Value``: keys sorted recursively, ryu floats."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _ryu(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        inner = ",".join(
            f"{json.dumps(k, ensure_ascii=False)}:{canonical_json(v)}" for k, v in items
        )
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def fnv1a64_hex(data: bytes) -> str:
    """FNV-1a 64-bit hash as 16 lowercase hex digits."""
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def unique_key_for(payload: object, unique_by: list[str] | None) -> str:
    """The record's ``unique_key`` (docs/autumn.md §1.3, Derived values)."""
    if not unique_by:
        return "args:" + fnv1a64_hex(canonical_json(payload).encode("utf-8"))
    fields = sorted(set(unique_by))
    source = payload if isinstance(payload, dict) else {}
    return "\x1f".join(f"{field}={canonical_json(source.get(field))}" for field in fields)


def concurrency_scope_for(payload: object, field: str) -> str:
    """Canonical JSON of the scoping field: a string keeps its quotes (``"acct-1"``)."""
    source = payload if isinstance(payload, dict) else {}
    return canonical_json(source.get(field))


def normalize_queue_name(queue: str | None) -> str:
    name = (queue or "").strip()
    return name or DEFAULT_QUEUE


def queue_key(prefix: str, queue: str) -> str:
    name = normalize_queue_name(queue)
    return f"{prefix}:queue" if name == DEFAULT_QUEUE else f"{prefix}:queue:{name}"


def encode_record(record: dict[str, Any], *, telemetry: bool = False) -> str:
    """Encode a record as serde does for RedisJobRecord: docs/autumn.md §2.1 order, unknown
    fields dropped."""
    parts: list[str] = []
    for field in RECORD_FIELDS:
        value = record.get(field)
        if field == "queue" and value is None:
            value = DEFAULT_QUEUE
        parts.append(f'"{field}":{canonical_json(value)}')
    for field in SKIP_IF_NONE_FIELDS:
        if record.get(field) is not None:
            parts.append(f'"{field}":{canonical_json(record[field])}')
    if telemetry:
        for field in TELEMETRY_FIELDS:
            parts.append(f'"{field}":{canonical_json(record.get(field))}')
    return "{" + ",".join(parts) + "}"


# ---------------------------------------------------------------------------------------------
# serde-like validation of a stored record (what Rust's decode accepts)
# ---------------------------------------------------------------------------------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{_ryu(value) if math.isfinite(value) else value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


def _check_uint(value: object, maximum: int, expected: str) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= maximum:
            return None
        return f"invalid value: integer `{value}`, expected {expected}"
    return f"invalid type: {_kind(value)}, expected {expected}"


#: RedisJobRecord's fields: (kind, optional). Unknown fields are ignored (no deny_unknown_fields).
_SERDE_FIELDS: dict[str, tuple[str, bool]] = {
    "id": ("str", False),
    "name": ("str", False),
    "queue": ("str", False),
    "payload": ("any", False),
    "attempt": ("u32", False),
    "max_attempts": ("u32", False),
    "initial_backoff_ms": ("u64", False),
    "enqueued_at_ms": ("u64", True),
    "started_at_ms": ("u64", True),
    "finished_at_ms": ("u64", True),
    "claimed_by": ("str", True),
    "claimed_at_ms": ("u64", True),
    "last_error": ("str", True),
    "unique_key": ("str", True),
    "unique_window": ("str", True),
    "concurrency_key": ("str", True),
    "concurrency_limit": ("u32", True),
    "traceparent": ("str", True),
    "tracestate": ("str", True),
}
_SERDE_REQUIRED = ("id", "name", "payload", "attempt", "max_attempts", "initial_backoff_ms")


def serde_record_error(obj: object) -> str | None:
    """Why serde would reject this decoded JSON as a RedisJobRecord, or None if it decodes.

    Like serde's derive: type errors in document order first, then the first missing field.
    """
    if not isinstance(obj, dict):
        return f"invalid type: {_kind(obj)}, expected struct RedisJobRecord"
    for field, value in obj.items():
        kind, optional = _SERDE_FIELDS.get(field, ("any", True))
        if kind == "any" or (optional and value is None):
            continue
        if kind == "str":
            if not isinstance(value, str):
                return f"invalid type: {_kind(value)}, expected a string"
            continue
        error = _check_uint(value, U32_MAX if kind == "u32" else U64_MAX, kind)
        if error:
            return error
    for field in _SERDE_REQUIRED:
        if field not in obj:
            return f"missing field `{field}`"
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"expected value ({name} is not JSON)")


def _pairs(repeated: list[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An object hook noting the struct fields named twice in the outermost object (the hook
    sees it last), which serde refuses; unknown fields it ignores, repeated or not."""

    def hook(items: list[tuple[str, Any]]) -> dict[str, Any]:
        repeated.clear()
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and key in _SERDE_FIELDS:
                repeated.append(key)
            seen.add(key)
        return dict(items)

    return hook


def decode_record(raw: bytes | str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) when serde would accept ``raw``; (None, error) otherwise."""
    if raw is None:
        return None, "record missing"
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        return None, f"invalid unicode code point at byte {exc.start}"
    repeated: list[str] = []
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_pairs(repeated))
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg[:1].lower()}{exc.msg[1:]} at line {exc.lineno} column {exc.colno}"
    except ValueError as exc:
        return None, str(exc)
    if repeated and isinstance(obj, dict):
        return None, f"duplicate field `{repeated[0]}`"
    error = serde_record_error(obj)
    if error:
        return None, error
    return obj, None


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------------------
# Lua: the emulator's copy of Autumn's scripts
# ---------------------------------------------------------------------------------------------

#: KEYS: lock (or the P:unique:- placeholder), record, delayed, queue
#: ARGV: id, encoded record, unique "1"/"0", lock ttl ms, delayed "1"/"0", due ms
#: Returns 1 when enqueued, 0 when coalesced by a held unique lock.
ENQUEUE_LUA = """
if ARGV[3] == '1' then
  if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[4]) then
    return 0
  end
end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
else
  redis.call('LPUSH', KEYS[4], ARGV[1])
end
return 1
"""

#: KEYS: processing, blocked, queue lists in priority order...
#: ARGV: record prefix, unique prefix, concurrency prefix, worker id, now ms, visibility ms,
#:       scan limit per queue, blocked delay ms, lock backstop ms
#: Returns {'claimed', id, cjson record} | {'malformed', id, raw body} | false
CLAIM_LUA = """
local now = tonumber(ARGV[5])
local deadline = now + tonumber(ARGV[6])
local scan = tonumber(ARGV[7])
for q = 3, #KEYS do
  for _ = 1, scan do
    local id = redis.call('RPOP', KEYS[q])
    if not id then break end
    local rkey = ARGV[1] .. id
    local raw = redis.call('GET', rkey)
    if raw then
      local ok, rec = pcall(cjson.decode, raw)
      if not ok or type(rec) ~= 'table' then
        redis.call('ZADD', KEYS[1], deadline, id)
        return {'malformed', id, raw}
      end
      local parked = false
      if type(rec.concurrency_limit) == 'number' then
        local scope = rec.concurrency_key
        if type(scope) ~= 'string' then scope = '' end
        local ckey = ARGV[3] .. tostring(rec.name) .. ':' .. scope
        local current = tonumber(redis.call('GET', ckey) or '0') or 0
        if current >= rec.concurrency_limit then
          redis.call('ZADD', KEYS[2], now + tonumber(ARGV[8]), id)
          parked = true
        else
          redis.call('INCR', ckey)
        end
      end
      if not parked then
        if type(rec.unique_key) == 'string' then
          local lkey = ARGV[2] .. tostring(rec.name) .. ':' .. rec.unique_key
          if rec.unique_window == 'pending' then
            if redis.call('GET', lkey) == id then redis.call('DEL', lkey) end
          elseif rec.unique_window == 'running' then
            redis.call('PEXPIRE', lkey, ARGV[9])
          end
        end
        rec.claimed_by = ARGV[4]
        rec.claimed_at_ms = now
        rec.started_at_ms = now
        rec.finished_at_ms = nil
        local enc = cjson.encode(rec)
        redis.call('SET', rkey, enc)
        redis.call('ZADD', KEYS[1], deadline, id)
        return {'claimed', id, enc}
      end
    end
  end
end
return false
"""

# Shared by settle and stale recovery: identity check, slot release, lock helpers, dead push.
_TRANSITION_COMMON_LUA = """
local function identity_ok(rkey, worker, claimed_at)
  local raw = redis.call('GET', rkey)
  if not raw then return false end
  local ok, cur = pcall(cjson.decode, raw)
  if not ok or type(cur) ~= 'table' then return false end
  if cur.claimed_by ~= worker then return false end
  if type(cur.claimed_at_ms) ~= 'number' then return false end
  return cur.claimed_at_ms == tonumber(claimed_at)
end
local function release_slot(limited, ckey)
  if limited ~= '1' then return end
  local current = tonumber(redis.call('GET', ckey) or '0') or 0
  if current <= 1 then
    redis.call('DEL', ckey)
  else
    redis.call('DECR', ckey)
  end
end
local function release_lock(flag, lkey, id)
  if flag == '1' and redis.call('GET', lkey) == id then redis.call('DEL', lkey) end
end
-- 'pending': take the lock again; false when another job owns it. 'running': refresh it.
local function requeue_lock(action, lkey, id, backstop)
  if action == 'pending' then
    if not redis.call('SET', lkey, id, 'NX', 'PX', backstop) then
      if redis.call('GET', lkey) ~= id then return false end
    end
  end
  return true
end
local function refresh_running_lock(action, lkey, backstop)
  if action == 'running' then redis.call('PEXPIRE', lkey, backstop) end
end
local function push_dead(dead, drkey, drprefix, enc, limit)
  redis.call('LPUSH', dead, enc)
  redis.call('SET', drkey, enc)
  local trimmed = redis.call('LRANGE', dead, limit, -1)
  for _, entry in ipairs(trimmed) do
    local ok, old = pcall(cjson.decode, entry)
    if ok and type(old) == 'table' and type(old.id) == 'string' then
      redis.call('DEL', drprefix .. old.id)
    end
  end
  redis.call('LTRIM', dead, 0, limit - 1)
end
"""

#: KEYS: record, processing, completed, delayed, dead, dead-record, lock, concurrency counter
#: ARGV: id, worker id, claimed_at ms, mode (success|retry|dead), encoded record, due ms,
#:       limited "1"/"0", release lock "1"/"0", requeue lock action (pending|running|""),
#:       dead-record prefix, history limit, lock backstop ms
#: Returns 0 when the claim changed, 1 when settled, 2 when a retry was dropped (lock taken).
SETTLE_LUA = (
    _TRANSITION_COMMON_LUA
    + """
if not identity_ok(KEYS[1], ARGV[2], ARGV[3]) then return 0 end
local id, mode, enc = ARGV[1], ARGV[4], ARGV[5]
local limit = tonumber(ARGV[11])
redis.call('ZREM', KEYS[2], id)
release_slot(ARGV[7], KEYS[8])
if mode == 'success' then
  release_lock(ARGV[8], KEYS[7], id)
  redis.call('LPUSH', KEYS[3], enc)
  redis.call('LTRIM', KEYS[3], 0, limit - 1)
  redis.call('DEL', KEYS[1])
  return 1
elseif mode == 'retry' then
  if not requeue_lock(ARGV[9], KEYS[7], id, ARGV[12]) then
    redis.call('DEL', KEYS[1])
    return 2
  end
  redis.call('SET', KEYS[1], enc)
  redis.call('ZADD', KEYS[4], ARGV[6], id)
  refresh_running_lock(ARGV[9], KEYS[7], ARGV[12])
  return 1
end
release_lock(ARGV[8], KEYS[7], id)
push_dead(KEYS[5], KEYS[6], ARGV[10], enc, limit)
redis.call('DEL', KEYS[1])
return 1
"""
)

#: KEYS: record, processing, the job's queue list, dead, dead-record, lock, concurrency counter
#: ARGV: id, claimed_by, claimed_at ms, mode (requeue|dead), encoded record, limited "1"/"0",
#:       release lock on dead "1"/"0", requeue lock action, dead-record prefix, history limit,
#:       lock backstop ms
#: Returns 0 when the claim changed, 1 when recovered, 2 when the requeue was dropped.
RECOVER_LUA = (
    _TRANSITION_COMMON_LUA
    + """
if not identity_ok(KEYS[1], ARGV[2], ARGV[3]) then return 0 end
local id, mode, enc = ARGV[1], ARGV[4], ARGV[5]
redis.call('ZREM', KEYS[2], id)
release_slot(ARGV[6], KEYS[7])
if mode == 'requeue' then
  if not requeue_lock(ARGV[8], KEYS[6], id, ARGV[11]) then
    redis.call('DEL', KEYS[1])
    return 2
  end
  redis.call('SET', KEYS[1], enc)
  redis.call('LPUSH', KEYS[3], id)
  refresh_running_lock(ARGV[8], KEYS[6], ARGV[11])
  return 1
end
release_lock(ARGV[7], KEYS[6], id)
push_dead(KEYS[4], KEYS[5], ARGV[9], enc, tonumber(ARGV[10]))
redis.call('DEL', KEYS[1])
return 1
"""
)

_PROMOTE_COMMON_LUA = """
local function queue_for(base, rec)
  local name = 'default'
  if rec and type(rec.queue) == 'string' then
    name = string.match(rec.queue, '^%s*(.-)%s*$')
  end
  if name == '' or name == 'default' then return base end
  return base .. ':' .. name
end
local function decode(raw)
  if not raw then return nil end
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' then return rec end
  return nil
end
"""

#: KEYS: delayed
#: ARGV: record prefix, default queue key (P:queue), now ms, then per due id three values:
#:       the id, the record as read before the script ("" when missing), and its serde rewrite
#:       ("" when serde rejects it: Autumn then leaves the record alone)
#: Moves the ids to their queues; a record still as read gets its rewrite (enqueued_at_ms =
#: now; started, finished and claim fields null) in the same script. Autumn's own rewrite is a
#: later MGET/SET a claim can interleave with (docs/autumn.md §5.10); here it cannot. Returns
#: the count.
PROMOTE_DELAYED_LUA = (
    _PROMOTE_COMMON_LUA
    + """
local moved, now = 0, tonumber(ARGV[3])
for i = 4, #ARGV, 3 do
  local id, seen, rewrite = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  -- Still due? It may have been re-delayed since it was read.
  local due = tonumber(redis.call('ZSCORE', KEYS[1], id))
  if due and due <= now and redis.call('ZREM', KEYS[1], id) == 1 then
    local rkey = ARGV[1] .. id
    local current = redis.call('GET', rkey)
    if current and current == seen and rewrite ~= '' then
      redis.call('SET', rkey, rewrite)
    end
    redis.call('LPUSH', queue_for(ARGV[2], decode(current)), id)
    moved = moved + 1
  end
end
return moved
"""
)

#: KEYS: blocked
#: ARGV: now ms, batch, record prefix, default queue key (P:queue)
#: Moves due parked ids back to their queue; no record rewrite. Returns the count.
PROMOTE_BLOCKED_LUA = (
    _PROMOTE_COMMON_LUA
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local rec = decode(redis.call('GET', ARGV[3] .. id))
    redis.call('LPUSH', queue_for(ARGV[4], rec), id)
    moved = moved + 1
  end
end
return moved
"""
)

#: KEYS: dead, processing.  ARGV: encoded malformed entry, id.
#: The malformed path (docs/autumn.md §3.4): no dead-record key, no trim, the record key is
#: left orphaned.
MALFORMED_LUA = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""


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
        self.clock = clock or _now_ms
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
        return None if raw is None else _s(raw)

    def record(self, job_id: str) -> dict[str, Any] | None:
        raw = self.record_raw(job_id)
        return None if raw is None else json.loads(raw)

    def _list(self, key: str) -> list[str]:
        return [_s(v) for v in self.client.lrange(key, 0, -1)]

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
        return None if raw is None else _s(raw)

    def _zset(self, key: str) -> list[tuple[str, int]]:
        rows = cast(list[tuple[Any, Any]], self.client.zrange(key, 0, -1, withscores=True))
        return [(_s(member), int(score)) for member, score in rows]

    def delayed_entries(self) -> list[tuple[str, int]]:
        return self._zset(self.delayed_key)

    def processing_entries(self) -> list[tuple[str, int]]:
        return self._zset(self.processing_key)

    def blocked_entries(self) -> list[tuple[str, int]]:
        return self._zset(self.blocked_key)


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------


class Panic(Exception):
    """Raise from a handler to take the panic path (dead-letter whatever attempts remain)."""


Handler = Callable[[dict[str, Any]], object]


def _payload(record: dict[str, Any]) -> dict[str, Any]:
    payload = record.get("payload")
    return payload if isinstance(payload, dict) else {}


def _noop(record: dict[str, Any]) -> None:
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
    "noop": _noop,
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
            _s(m) for m in self.client.zrangebyscore(a.delayed_key, "-inf", now, 0, PROMOTION_BATCH)
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
            _s(m)
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
            _, job_id, body = [_s(part) for part in cast(list[Any], reply)]
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


# ---------------------------------------------------------------------------------------------
# Demo data
# ---------------------------------------------------------------------------------------------

SEED_QUEUES = ["critical", "default", "low"]


def _seed_handlers() -> dict[str, Handler]:
    handlers = dict(BUILTIN_HANDLERS)
    for name in (
        "send_welcome_email",
        "charge_invoice",
        "generate_report",
        "resize_avatar",
        "sync_crm_contact",
        "rebuild_search_index",
        "render_comment",
    ):
        handlers[name] = _noop
    return handlers


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def reset_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix:`` (the demo's own prefix)."""
    deleted = 0
    batch: list[bytes | str] = []
    for key in client.scan_iter(match=_escape_glob(prefix) + ":*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.delete(*batch))
            batch = []
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


def seed(
    client: redis.Redis, prefix: str = DEFAULT_PREFIX, *, reset: bool = True
) -> dict[str, int]:
    """Write a realistic mix by running the producer and a worker; counts per key kind."""
    if reset:
        reset_prefix(client, prefix)
    app = Autumn(client, prefix)
    worker = Worker(app, SEED_QUEUES, handlers=_seed_handlers())

    def ident(n: int) -> dict[str, Any]:
        return {"principal_id": f"user-{100 + n}", "correlation_id": f"req-{uuid.uuid4().hex[:12]}"}

    # 1. Work that runs now: completions, failures, a retry in backoff, a malformed record.
    for n, (name, queue) in enumerate(
        [
            ("send_welcome_email", "critical"),
            ("charge_invoice", "critical"),
            ("generate_report", "default"),
            ("resize_avatar", "low"),
            ("send_welcome_email", "default"),
            ("generate_report", "low"),
        ]
    ):
        app.enqueue(name, {**ident(n), "n": n, "note": "a/b path"}, queue=queue)
    app.enqueue(
        "always_fail",
        {
            **ident(10),
            "message": "<script>alert(1)</script>",
            "html": "<img src=x onerror=alert(1)>",
        },
        max_attempts=1,
    )
    app.enqueue(
        "render_comment",
        {"principal_id": 42, "request_id": "req-render", "body": "<img src=x onerror=alert(1)>"},
        queue="low",
    )
    app.enqueue("panic", {**ident(11), "message": "index out of bounds: the len is 0"})
    app.enqueue("import_legacy_csv", {**ident(12), "file": "s3://bucket/legacy.csv"})
    app.enqueue(
        "fail_times",
        {**ident(13), "fail_times": 3, "invoice": "INV-2024-001"},
        queue="critical",
        initial_backoff_ms=600_000,
    )
    malformed_id = str(uuid.uuid4())
    # A third-party tool wrote "attempt" as a string: cjson accepts it, serde does not
    # (docs/autumn.md §5.1).
    bad = json.loads(app.encode({"id": malformed_id, "name": "charge_invoice", "payload": {}}))
    bad.update(attempt="1", max_attempts=5, initial_backoff_ms=250, enqueued_at_ms=app.now_ms())
    client.set(app.record_key(malformed_id), json.dumps(bad, separators=(",", ":")))
    client.lpush(app.queue_key("default"), malformed_id)
    while worker.run_once():
        pass

    # 2. A running job (long visibility) holding a concurrency slot, and a parked sibling.
    runner = Worker(
        Autumn(client, prefix, visibility_timeout_ms=3_600_000),
        ["low"],
        handlers=_seed_handlers(),
    )
    for n in range(2):
        app.enqueue(
            "sync_crm_contact",
            {**ident(20 + n), "account_id": "acct-1", "contact": n},
            queue="low",
            concurrency_limit=1,
            concurrency_scope_field="account_id",
        )
    runner.claim()
    runner.claim()  # parks the sibling in P:blocked

    # 3. Scheduled jobs and a unique job (its duplicate is coalesced).
    for n, (queue, delay) in enumerate(
        [("default", 3_600_000), ("low", 21_600_000), ("critical", 86_400_000)]
    ):
        app.enqueue(
            "generate_report", {**ident(30 + n), "period": "daily"}, queue=queue, delay_ms=delay
        )
    for _ in range(2):
        app.enqueue(
            "rebuild_search_index",
            {"tenant": "acme", **ident(40)},
            unique="running",
            unique_by=["tenant"],
        )

    # 4. Left enqueued.
    for n, queue in enumerate(["critical", "default", "default", "low", "low"]):
        app.enqueue(
            "send_welcome_email", {**ident(50 + n), "email": f"user{n}@example.com"}, queue=queue
        )

    counts = {"queue:" + q: int(client.llen(app.queue_key(q))) for q in SEED_QUEUES}
    counts["processing"] = int(client.zcard(app.processing_key))
    counts["delayed"] = int(client.zcard(app.delayed_key))
    counts["blocked"] = int(client.zcard(app.blocked_key))
    counts["completed"] = int(client.llen(app.completed_key))
    counts["dead"] = int(client.llen(app.dead_key))
    return counts


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
