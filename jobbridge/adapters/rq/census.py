"""RQ's queue census (jobbridge.census): the ids of ``<prefix>:queue:<q>`` in pages, and of
each id the start of its hash's ``data`` and ``description`` in one read per page.

A job's name is the function name that opens its pickled (or JSON) ``data`` tuple, read as
the rows read it (:mod:`.decode`), else its ``description`` up to the first parenthesis. RQ
records no principal of its own: the census counts names only.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobbridge import offload
from jobbridge.adapters.fields import MAX_NAME_CHARS, cap
from jobbridge.adapters.payloads import clean_name
from jobbridge.adapters.rq import decode
from jobbridge.census.model import UNKNOWN_NAME, CensusPlan, PageCount
from jobbridge.census.reads import heads, read_heads

if TYPE_CHECKING:
    from jobbridge.adapters.contract import JobAdapter

#: bytes read of each field: a function name opens ``data`` (a few dozen bytes inflated)
KEEP = 256
#: the hash fields read of each job
FIELDS = ("data", "description")
#: bytes a ``data`` prefix may inflate to here (the name is within the first hundreds)
_INFLATE_TO = 4096
_MARK, _FRAME, _MEMOIZE, _NONE = 0x28, 0x95, 0x94, 0x4E
_SHORT_BINUNICODE, _BINUNICODE = 0x8C, 0x58


def plan(adapter: JobAdapter, queue: str) -> CensusPlan:
    """The census plan of one RQ queue."""
    from jobbridge.adapters.rq.adapter import RqAdapter

    if not isinstance(adapter, RqAdapter):
        raise TypeError(f"not an RQ adapter: {type(adapter).__name__}")
    client = adapter.client
    prefix = adapter.keys.job_key_prefix.encode("utf-8", "surrogateescape")

    async def count(ids: Sequence[bytes]) -> PageCount:
        reply = await read_heads(client, [prefix + i for i in ids], FIELDS, KEEP)
        # Decoding a thousand names takes a few ms: the decoding process does it.
        return await offload.decode(count_page, b"", reply, inline_bytes=-1)

    return CensusPlan(client=client, lists=(adapter.keys.queue(queue),), count=count)


def count_page(_: bytes, reply: list[Any]) -> PageCount:
    """The names of a page's jobs from ``read.lua``'s reply (run by jobbridge.offload)."""
    names: Counter[str] = Counter()
    missing = 0
    for exists, ((data, size), (description, _length)) in heads(reply, len(FIELDS)):
        if exists == 0:
            missing += 1
            continue
        names[job_name(data, size, description)] += 1
    return PageCount(dict(names), None, missing)


def job_name(data: bytes | None, size: int, description: bytes | None) -> str:
    """A job's function name from the start of its ``data`` (``size``: the whole field's
    length) and of its ``description``."""
    name = _name_from_data(data, size) if data else None
    if not name and description:
        head = description.decode("utf-8", "replace").split("(", 1)[0].strip()
        name = cap(clean_name(head), MAX_NAME_CHARS)
    return name or UNKNOWN_NAME


def _name_from_data(data: bytes, size: int) -> str | None:
    """``size`` > ``len(data)``: only the start was read; decode_call reads a name from it."""
    inflated = _inflate(data)
    fast = _pickled_name(inflated) if inflated is not None else None
    if fast is not None:
        return fast
    # Anything else (JSON, an older protocol, a bound method, a field read in part) as a
    # row reads it: the opcodes or the JSON list, never executed.
    call = decode.decode_call(data)
    return call.func_name or None


def _inflate(data: bytes) -> bytes | None:
    try:
        return zlib.decompressobj().decompress(data, _INFLATE_TO)
    except zlib.error:
        return data  # RQ reads bytes that are not zlib as they are


def _pickled_name(pickled: bytes) -> str | None:
    """The name of the common case, read straight from the bytes: protocol 2+, a frame, MARK,
    a unicode string, then ``None`` (a plain function's instance). None: not that shape."""
    if pickled[:1] != b"\x80":
        return None
    pos = 2
    if pickled[pos : pos + 1] == bytes((_FRAME,)):
        pos += 9
    if pickled[pos : pos + 1] != bytes((_MARK,)):
        return None
    op = pickled[pos + 1 : pos + 2]
    if op == bytes((_SHORT_BINUNICODE,)):
        length, start = pickled[pos + 2 : pos + 3], pos + 3
        if not length:
            return None
        size = length[0]
    elif op == bytes((_BINUNICODE,)):
        size, start = int.from_bytes(pickled[pos + 2 : pos + 6], "little"), pos + 6
    else:
        return None
    raw = pickled[start : start + size]
    after = start + size
    if pickled[after : after + 1] == bytes((_MEMOIZE,)):
        after += 1
    if len(raw) < size or pickled[after : after + 1] != bytes((_NONE,)):
        return None
    try:
        return clean_name(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None
