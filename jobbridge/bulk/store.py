"""A bulk run's state in the source's Redis, under jobbridge's prefix, so that a page reload
survives it and another replica shows it.

Keys (``<prefix>bulk:<source>:<run>…``; docs/operations.md, "Bulk actions"):

- ``<prefix>bulk:<source>:<run>``: a hash: ``action``, ``list``, ``filter`` (JSON of the
  filter's query fields), ``ids`` (JSON list of ticked ids), ``actor``, ``created_at``,
  ``state``, ``looked_at``, ``matched``, ``capped``, ``sample`` (JSON rows), ``acted``,
  ``outcomes`` (JSON object), ``started_at``, ``finished_at`` (Unix ms), ``cancel_by`` (who
  asked to stop it), ``canceled_by``, ``error``;
- ``…:ids``: the matched ids, a list of JSON ``[id, entry]``, at most ``MAX_BULK_JOBS``;
- ``…:skipped``: jobs not acted on, a list of JSON ``{job_id, outcome, message}``, at most
  ``MAX_SKIPS``;
- ``…:lease``: the token of the process matching or running it (renewed by each write).

Every key expires ``TTL_S`` after the run's last write; the lease ``LEASE_MS`` after its last
renewal, so a run whose process stopped reads as failed ("interrupted") soon after. Every write
is one Lua script (``lua/``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from jobbridge.bulk.model import (
    MAX_BULK_JOBS,
    MAX_SKIPS,
    BulkRun,
    BulkSkip,
    BulkState,
)
from jobbridge.filters import FilterError, JobFilter, filter_query, parse_filter
from jobbridge.leases import Lease
from jobbridge.lua_text import lua_text
from jobbridge.model import Action, JobRecord, ListName
from jobbridge.serialize import json_fields, optional, to_json

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: seconds a run's keys live after its last write
TTL_S = 24 * 3600
#: how long a lease outlives its last renewal, ms
LEASE_MS = 15_000
#: what a run whose process stopped says
INTERRUPTED = "interrupted: the jobbridge process running it stopped; the rest is untouched"


class LeaseLost(Exception):
    """Another process holds the run's lease; this one stops writing."""


def script(name: str) -> str:
    """The text of ``bulk/lua/<name>.lua``, as shipped."""
    return lua_text("jobbridge.bulk", name)


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


class BulkStore:
    """One run's keys on the source's Redis."""

    def __init__(self, client: Redis, prefix: str, source: str, run_id: str) -> None:
        self.client = client
        self.source = source
        self.run_id = run_id
        self.key = f"{prefix}bulk:{source}:{run_id}"
        self._lease = Lease(client, self.lease_key)
        self._write = client.register_script(script("write"))
        self._cancel = client.register_script(script("cancel"))

    @property
    def lease_key(self) -> str:
        return f"{self.key}:lease"

    @property
    def ids_key(self) -> str:
        return f"{self.key}:ids"

    @property
    def skipped_key(self) -> str:
        return f"{self.key}:skipped"

    async def take_lease(self, token: str) -> bool:
        return await self._lease.hold(token, LEASE_MS)

    async def release(self, token: str) -> None:
        await self._lease.release(token)

    async def write(
        self,
        token: str,
        fields: Mapping[str, str | int],
        *,
        ids: Sequence[tuple[str, str | None]] = (),
        skips: Sequence[BulkSkip] = (),
        first: bool = False,
        last: bool = False,
    ) -> str:
        """Store fields (and append ids and skipped jobs) while ``token`` holds the lease;
        who asked to cancel the run ("" nobody).

        Raises:
            LeaseLost: the token does not hold the lease (nothing was written).
        """
        id_args = [json.dumps([i, e or ""], ensure_ascii=True) for i, e in ids]
        skip_args = [json.dumps(dataclasses.asdict(s), ensure_ascii=True) for s in skips]
        args: list[str | int] = [
            token,
            LEASE_MS,
            TTL_S,
            int(first),
            int(last),
            len(id_args),
            len(skip_args),
            MAX_BULK_JOBS,
            MAX_SKIPS,
            *id_args,
            *skip_args,
        ]
        for name, value in fields.items():
            args += [name, value]
        keys = [self.lease_key, self.key, self.ids_key, self.skipped_key]
        reply = cast("list[Any]", await self._write(keys=keys, args=args))
        if int(reply[0]) != 1:
            raise LeaseLost
        return _text(reply[1])

    async def ask_cancel(self, actor: str) -> bool:
        """Ask the run to stop; False: there is no such run."""
        return bool(await self._cancel(keys=[self.key], args=[actor]))

    async def ids(self, start: int, count: int) -> list[tuple[str, str | None]]:
        """``count`` matched ids from ``start`` (one bounded LRANGE)."""
        raws = cast("list[bytes]", await self.client.lrange(self.ids_key, start, start + count - 1))
        out: list[tuple[str, str | None]] = []
        for raw in raws:
            try:
                job_id, entry = json.loads(_text(raw))
                out.append((str(job_id), str(entry) or None))
            except (ValueError, TypeError):
                continue
        return out

    async def read(self) -> BulkRun | None:
        """The stored run (one HGETALL of a bounded hash, the bounded skipped list, one
        EXISTS); None: none (never, or expired)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.key)
        pipe.lrange(self.skipped_key, 0, MAX_SKIPS - 1)
        pipe.exists(self.lease_key)
        raw, skipped, leased = await pipe.execute()
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in cast("dict[bytes, bytes]", raw).items()}
        skips = tuple(s for s in (_skip(r) for r in cast("list[bytes]", skipped)) if s)
        return run_of(self.source, self.run_id, fields, skips, leased=bool(leased))


def run_fields(run: BulkRun) -> dict[str, str | int]:
    """Every hash field of a run (its first write)."""
    return {
        "action": run.action.value,
        "list": run.list.value,
        "filter": json.dumps(filter_query(run.filter), ensure_ascii=True),
        "ids": json.dumps(list(run.ids), ensure_ascii=True),
        "actor": run.actor,
        "created_at": _ms(run.created_at),
        "state": run.state.value,
        "looked_at": run.looked_at,
        "matched": run.matched,
        "capped": int(run.capped),
        "sample": sample_text(run.sample),
        "acted": run.acted,
        "outcomes": json.dumps(dict(run.outcomes), ensure_ascii=True),
        "started_at": _ms(run.started_at),
        "finished_at": _ms(run.finished_at),
        "canceled_by": run.canceled_by or "",
        "error": run.error or "",
    }


def sample_text(rows: Sequence[JobRecord]) -> str:
    return json.dumps([to_json(r) for r in rows], ensure_ascii=True)


def _ms(value: datetime | None) -> int:
    return int(value.timestamp() * 1000) if value is not None else 0


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _int(value: str | None) -> int:
    """A stored count; 0 when missing or broken (anyone may write jobbridge's keys)."""
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _time(value: str | None) -> datetime | None:
    try:
        ms = int(value or "")
    except ValueError:
        return None
    if ms <= 0:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _skip(raw: bytes | str) -> BulkSkip | None:
    try:
        data = json.loads(_text(raw))
        return BulkSkip(
            job_id=str(data["job_id"]), outcome=str(data["outcome"]), message=str(data["message"])
        )
    except (ValueError, TypeError, KeyError):
        return None


def _json(value: str | None, default: Any) -> Any:
    try:
        return json.loads(value or "")
    except ValueError:
        return default


def run_of(
    source: str, run_id: str, f: Mapping[str, str], skips: tuple[BulkSkip, ...], *, leased: bool
) -> BulkRun | None:
    """A run from its stored fields; None when they are not one (broken by hand)."""
    try:
        action = Action(f.get("action", ""))
        which = ListName(f.get("list", ""))
        state = BulkState(f.get("state", ""))
    except ValueError:
        return None
    error = f.get("error") or None
    if state in (BulkState.MATCHING, BulkState.RUNNING) and not leased:
        state, error = BulkState.FAILED, INTERRUPTED
    raw_filter = _json(f.get("filter"), {})
    try:
        job_filter = parse_filter(
            {str(k): str(v) for k, v in raw_filter.items()} if isinstance(raw_filter, dict) else {}
        )
    except FilterError:
        job_filter = JobFilter()
    ids = _json(f.get("ids"), [])
    outcomes = _json(f.get("outcomes"), {})
    sample = _json(f.get("sample"), [])
    return BulkRun(
        id=run_id,
        source=source,
        action=action,
        list=which,
        filter=job_filter,
        ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
        actor=f.get("actor", ""),
        created_at=_time(f.get("created_at")) or datetime.fromtimestamp(0, tz=UTC),
        state=state,
        looked_at=_int(f.get("looked_at")),
        matched=_int(f.get("matched")),
        capped=f.get("capped") == "1",
        sample=tuple(_rows(sample)),
        acted=_int(f.get("acted")),
        outcomes={str(k): _int(str(v)) for k, v in outcomes.items()}
        if isinstance(outcomes, dict)
        else {},
        skipped=skips,
        started_at=_time(f.get("started_at")),
        finished_at=_time(f.get("finished_at")),
        canceled_by=f.get("canceled_by") or None,
        error=error,
    )


def _rows(data: Any) -> list[JobRecord]:
    if not isinstance(data, list):
        return []
    rows = []
    for item in data:
        try:
            rows.append(from_json(JobRecord, item))
        except (TypeError, ValueError, KeyError):
            continue
    return rows


T = typing.TypeVar("T")


def from_json(cls: type[T], data: Any) -> T:
    """A record from what ``serialize.to_json`` made of it (times to whole seconds).

    Raises:
        TypeError, ValueError, KeyError: ``data`` is not one.
    """
    if not isinstance(data, dict):
        raise TypeError(f"not a {cls.__name__}")
    values: dict[str, Any] = {}
    for f in json_fields(cast("type", cls)):
        if f.inline:
            values[f.attr] = from_json(f.hint, data)
        elif f.key in data:
            values[f.attr] = _decode(f.hint, data[f.key])
    return cls(**values)


def _decode(hint: Any, value: Any) -> Any:
    inner, nullable = optional(hint)
    if value is None:
        if nullable:
            return None
        raise TypeError("null")
    hint = inner
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is datetime:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_json(hint, value)
    if origin is tuple:
        return tuple(_decode(args[0], v) for v in value)
    if origin in (Mapping, dict):
        return {str(k): _decode(args[1], v) for k, v in value.items()}
    if hint is float and isinstance(value, int):
        return float(value)
    if hint in (str, int, float, bool):
        if not isinstance(value, hint):
            raise TypeError(f"not a {hint.__name__}")
        return value
    return value
