"""The model as JSON-ready dicts: one shape for the API and the CLI's ``--json``.

A record is encoded field by field in declaration order, from its type hints and its fields'
``model.api(...)`` metadata: datetimes as RFC 3339, enums by value, tuples as lists, mappings as
objects, nested records likewise. web/openapi.py derives the schema from the same fields.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from jobbridge.model import (
    DONE_WORDS,
    ActionResult,
    AuditEntry,
    Counters,
    JobDetail,
    Outcome,
    Snapshot,
)

Encoder = Callable[[Any], Any]


def rfc3339(value: datetime | None) -> str | None:
    """Aware UTC datetime as RFC 3339 with a Z suffix, to whole seconds (as Autumn)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True, slots=True)
class JsonField:
    """One key of a record's JSON object."""

    key: str
    attr: str
    #: the field's resolved type hint
    hint: Any
    metadata: Mapping[str, Any]

    @property
    def inline(self) -> bool:
        return bool(self.metadata.get("inline"))


@functools.cache
def json_fields(cls: type) -> tuple[JsonField, ...]:
    """The keys a record of ``cls`` encodes to, in order (omitted fields left out)."""
    hints = typing.get_type_hints(cls)
    return tuple(
        JsonField(f.metadata.get("name", f.name), f.name, hints[f.name], f.metadata)
        for f in dataclasses.fields(cls)
        if not f.metadata.get("omit")
    )


def optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` as (X, True); any other hint as (hint, False)."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"no JSON encoding for the union {hint!r}")
        return args[0], True
    return hint, False


def _value(item: Any) -> Any:
    return item.value


def _same(item: Any) -> Any:
    return item


def _encoder(hint: Any) -> Encoder | None:
    """How to encode a value of type ``hint`` (None: as it is)."""
    inner, nullable = optional(hint)
    if nullable:
        encode = _encoder(inner)
        if encode is None:
            return None
        return lambda v: None if v is None else encode(v)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is datetime:
        return rfc3339
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return to_json
    if origin is tuple:
        each = _encoder(args[0])
        if each is None:
            return list
        return lambda v: [each(x) for x in v]
    if origin in (Mapping, dict):
        key, item = _encoder(args[0]) or str, _encoder(args[1])
        if item is None and key is str:
            return dict
        value = item or _same
        return lambda v: {key(k): value(x) for k, x in v.items()}
    if hint in (str, int, float, bool) or origin is typing.Literal:
        return None
    raise TypeError(f"no JSON encoding for {hint!r}")


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, str, Encoder | None, bool], ...]:
    return tuple((f.key, f.attr, _encoder(f.hint), f.inline) for f in json_fields(cls))


def to_json(record: Any) -> dict[str, Any]:
    """A model record as a JSON-ready dict."""
    data: dict[str, Any] = {}
    cls: type = record.__class__
    for key, attr, encode, inline in _plan(cls):
        value = getattr(record, attr)
        if encode is not None:
            value = encode(value)
        if inline:
            data.update(value)
        else:
            data[key] = value
    return data


def counters_json(counters: Counters) -> dict[str, Any]:
    return to_json(counters)


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    return to_json(snapshot)


def detail_json(detail: JobDetail) -> dict[str, Any]:
    """The job's keys, then its payload and lifecycle entries (not the raw record)."""
    return to_json(detail)


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return to_json(entry)


def action_json(result: ActionResult) -> dict[str, Any]:
    """``{"outcome": "retried", "id", "new_id"?}`` on success, else ``{"error", "message"}``.

    Written out by hand: its two shapes are the ActionDone and Error schemas of the document.
    """
    if result.outcome is Outcome.DONE:
        data: dict[str, Any] = {"outcome": DONE_WORDS[result.action], "id": result.job_id}
        if result.new_id:
            data["new_id"] = result.new_id
        data["message"] = result.message
        return data
    # A refused outcome's own word is the API's error code (not_found, wrong_state, ...).
    return {"error": result.outcome.value, "message": result.message, "id": result.job_id}
