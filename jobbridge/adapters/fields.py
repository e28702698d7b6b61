"""Reading record fields: text, times, caps and the identity of a payload, the same for every
system."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobbridge.adapters import times

if TYPE_CHECKING:
    pass

#: Largest error text kept on a record; the rest is cut with a marker.
MAX_ERROR_CHARS = 16_384
#: Largest job name or queue name shown.
MAX_NAME_CHARS = 200


def text(value: bytes | str | None) -> str | None:
    """Redis bytes to str, replacing invalid UTF-8 rather than failing."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def key_text(value: bytes | str) -> str:
    """A job id or key name read from Redis, as text that encodes back to the same bytes.

    Bytes that are not UTF-8 become lone surrogates (``surrogateescape``); clients are made
    with ``encoding_errors="surrogateescape"`` (jobbridge.sources.connect), so such an id
    finds its job again. Pages and the terminal show those characters as U+FFFD.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return value


def score_ms(score: float) -> int | None:
    """A sorted-set score as Unix ms; None for +/-inf, NaN and years past 9999."""
    ms = times.finite(score)
    if ms is None or abs(ms) > times.MAX_EPOCH_MS:
        return None
    return int(ms)


def cap(value: str | None, limit: int) -> str | None:
    """Cut attacker-sized text to a limit, marking the cut."""
    if value is None or len(value) <= limit:
        return value
    return value[:limit] + f"… [{len(value) - limit} more characters]"


def glob_escape(literal: str) -> str:
    """``literal`` as a Redis glob pattern that matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in literal)


def ms_to_datetime(value: object) -> datetime | None:
    """Unix milliseconds to an aware UTC datetime; None for null, non-integers or nonsense."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return times.epoch_ms(value)


def whole_ms(value: object) -> object:
    """A JSON number of ms as an int (cjson may write a float); anything else unchanged."""
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return value


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def now_ms() -> int:
    return datetime_to_ms(datetime.now(tz=UTC))


def identity_value(payload: object, keys: tuple[str, ...]) -> str | None:
    """Autumn's identity rule: the first top-level key with a usable value.

    A non-empty string is used as is; numbers and booleans become JSON text; empty strings,
    null, objects and arrays are skipped in favour of the next key.
    """
    if not isinstance(payload, Mapping):
        return None
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str):
            if value:
                return cap(value, MAX_NAME_CHARS)
        elif isinstance(value, bool | int | float):
            return json.dumps(value)
    return None


PRINCIPAL_KEYS = ("principal_id", "principal", "user_id")
CORRELATION_KEYS = ("correlation_id", "request_id")


def principal_of(payload: object) -> str | None:
    return identity_value(payload, PRINCIPAL_KEYS)


def correlation_of(payload: object) -> str | None:
    return identity_value(payload, CORRELATION_KEYS)


def client_location(client: Any) -> str:
    """host:port/db (or socket path/db) of a client, to tell Redis databases apart; for a
    client of a Sentinel-managed master, the master's name and the sentinels asked."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    service = getattr(pool, "service_name", None)
    if service is not None:
        sentinels = getattr(getattr(pool, "sentinel_manager", None), "sentinels", ())
        asked = ",".join(
            f"{s.connection_pool.connection_kwargs.get('host')}:"
            f"{s.connection_pool.connection_kwargs.get('port')}"
            for s in sentinels
        )
        return f"sentinel:{service}@{asked}/{kwargs.get('db', 0)}"
    where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    return f"{where}/{kwargs.get('db', 0)}"
