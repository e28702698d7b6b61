"""Celery's queue census (jobbridge.census): the messages of a queue's broker lists (one per
priority step, in the order of its steps) in pages; each message's task name is its
``headers.task`` (protocol 2) or its body's ``task`` (protocol 1), decoded as the rows decode
messages (:mod:`.messages`), never executed. Celery records no principal of its own.

A page is read with ``census/lua/envelopes.lua``: a message longer than ``KEEP`` bytes comes
back with its body cut out (its headers still name its task), so a page costs at most
``PAGE`` times ``KEEP`` bytes however big the messages are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jobbridge import offload
from jobbridge.adapters.celery import messages
from jobbridge.census.model import UNKNOWN_NAME, CensusPlan, PageCount
from jobbridge.census.store import script

if TYPE_CHECKING:
    from jobbridge.adapters.contract import JobAdapter

#: messages read per step: each is its whole envelope (a kilobyte or two, arguments included)
PAGE = 500
#: bytes of a message sent back whole; a longer one comes without its body
KEEP = 64 * 1024


def plan(adapter: JobAdapter, queue: str) -> CensusPlan:
    """The census plan of one Celery queue: every priority list of it."""
    from jobbridge.adapters.celery.adapter import CeleryAdapter

    if not isinstance(adapter, CeleryAdapter):
        raise TypeError(f"not a Celery adapter: {type(adapter).__name__}")
    keys = adapter.keys
    lists = tuple(keys.step_list(queue, step) for step in keys.priority_steps)
    client = adapter.client
    envelopes = client.register_script(script("envelopes"))

    async def read(key: str, first: int, last: int) -> list[tuple[bytes | None, int]]:
        flat = list(await envelopes(keys=[key], args=[first, last, KEEP]))
        return [(flat[i], int(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]

    async def count(page: Sequence[Any]) -> PageCount:
        return await offload.decode(count_page, b"", list(page), inline_bytes=-1)

    return CensusPlan(client=client, lists=lists, count=count, page=PAGE, read=read)


def count_page(_: bytes, page: list[tuple[bytes | None, int]]) -> PageCount:
    """The task names of a page of broker elements (run by jobbridge.offload)."""
    names: Counter[str] = Counter()
    for raw, _size in page:
        task = messages.decode_message(raw).task if raw else None
        names[task or UNKNOWN_NAME] += 1
    return PageCount(dict(names), None, 0)
