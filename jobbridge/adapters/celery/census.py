"""Celery's queue census (jobbridge.census): the messages of a queue's broker lists (one per
priority step, in the order workers take them) in pages; each message's task name is its
``headers.task`` (protocol 2) or its body's ``task`` (protocol 1), decoded as the rows decode
messages (:mod:`.messages`), never executed. Celery records no principal of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobbridge import offload
from jobbridge.adapters.celery import messages
from jobbridge.census.model import UNKNOWN_NAME, CensusPlan, PageCount

if TYPE_CHECKING:
    from jobbridge.adapters.contract import JobAdapter

#: messages read per step: each is its whole envelope (a kilobyte or two, arguments included)
PAGE = 500


def plan(adapter: JobAdapter, queue: str) -> CensusPlan:
    """The census plan of one Celery queue: every priority list of it."""
    from jobbridge.adapters.celery.adapter import CeleryAdapter

    if not isinstance(adapter, CeleryAdapter):
        raise TypeError(f"not a Celery adapter: {type(adapter).__name__}")
    keys = adapter.keys
    lists = tuple(keys.step_list(queue, step) for step in keys.priority_steps)

    async def count(elements: Sequence[bytes]) -> PageCount:
        return await offload.decode(count_page, b"", list(elements), inline_bytes=-1)

    return CensusPlan(client=adapter.client, lists=lists, count=count, page=PAGE)


def count_page(_: bytes, elements: list[bytes]) -> PageCount:
    """The task names of a page of broker elements (run by jobbridge.offload)."""
    names: Counter[str] = Counter()
    for raw in elements:
        names[messages.decode_message(raw).task or UNKNOWN_NAME] += 1
    return PageCount(dict(names), None, 0)
