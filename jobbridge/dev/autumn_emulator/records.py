"""Autumn's job record as its Redis backend writes it: serde_json encoding, field order,
unique and concurrency keys, and what Rust's decode accepts (docs/autumn.md §2)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

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


def as_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
