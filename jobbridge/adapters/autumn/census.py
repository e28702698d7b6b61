"""Autumn's queue census (jobbridge.census): the ids of ``<prefix>:queue[:<name>]`` in pages,
and of each id the start of its record ``<prefix>:record:<id>`` in one read per page.

A job's name is its record's ``name``; its principal is the payload's ``principal_id`` (else
``principal``, else ``user_id``), as Autumn's own page reads it. A record longer than
``KEEP`` bytes is read in part: its name still comes from the start, its principal counts as
not read.
"""

from __future__ import annotations

import re
from _json import scanstring
from collections import Counter
from collections.abc import Sequence
from json import JSONDecodeError
from typing import TYPE_CHECKING, Any

from jobbridge import offload, safejson
from jobbridge.adapters.fields import MAX_NAME_CHARS, principal_of
from jobbridge.adapters.payloads import clean_name
from jobbridge.census.model import NO_PRINCIPAL, UNKNOWN_NAME, CensusPlan, PageCount
from jobbridge.census.reads import heads, read_heads

if TYPE_CHECKING:
    from jobbridge.adapters.contract import JobAdapter

#: bytes read of each record (a usual record is a few hundred)
KEEP = 4096
#: what a principal counts as when the record was too long to read whole
PRINCIPAL_NOT_READ = f"(not read: record over {KEEP:,} bytes)"
_NAME = re.compile(rb'"name"[ \t\r\n]*:[ \t\r\n]*"')


def plan(adapter: JobAdapter, queue: str) -> CensusPlan:
    """The census plan of one Autumn queue."""
    from jobbridge.adapters.autumn.adapter import AutumnAdapter

    if not isinstance(adapter, AutumnAdapter):
        raise TypeError(f"not an Autumn adapter: {type(adapter).__name__}")
    client = adapter.client
    prefix = adapter.keys.record("").encode("utf-8", "surrogateescape")

    async def count(ids: Sequence[bytes]) -> PageCount:
        reply = await read_heads(client, [prefix + i for i in ids], (), KEEP)
        return await offload.decode(count_page, b"", reply, inline_bytes=-1)

    return CensusPlan(
        client=client, lists=(adapter.keys.queue(queue),), count=count, principals=True
    )


def count_page(_: bytes, reply: list[Any]) -> PageCount:
    """Names and principals of a page's jobs from ``read.lua``'s reply (run by
    jobbridge.offload)."""
    names: Counter[str] = Counter()
    principals: Counter[str] = Counter()
    missing = 0
    for exists, ((record, size),) in heads(reply, 1):
        if exists == 0 or record is None:
            missing += 1
            continue
        name, principal = read_record(record, size)
        names[name] += 1
        principals[principal] += 1
    return PageCount(dict(names), dict(principals), missing)


def read_record(record: bytes, size: int) -> tuple[str, str]:
    """(name, principal) of a record's start; ``size`` is the whole record's length."""
    if len(record) >= size:
        try:
            loaded = safejson.loads(record)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            name = loaded.get("name")
            principal = principal_of(loaded.get("payload"))
            shown = clean_name(name) if isinstance(name, str) and name else UNKNOWN_NAME
            return shown, principal[:MAX_NAME_CHARS] if principal else NO_PRINCIPAL
    return _name_only(record), PRINCIPAL_NOT_READ


def _name_only(record: bytes) -> str:
    found = _NAME.search(record)
    if found is None:
        return UNKNOWN_NAME
    window = record[found.end() : found.end() + 8 * MAX_NAME_CHARS].decode("utf-8", "replace")
    try:
        name, _ = scanstring(window, 0)
    except (ValueError, JSONDecodeError):
        return UNKNOWN_NAME
    return clean_name(name) or UNKNOWN_NAME
