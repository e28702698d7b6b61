"""A pattern subscription kept up for good: subscribe, listen until it fails, close, wait
(backing off), subscribe again. Celery's result index and its task event feed both follow
channels this way; what they do with the messages, and what a loss means, is theirs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

#: longest the close of a lost subscription may take
CLOSE_S = 1.0


async def resubscribe_forever(
    client: Redis,
    pattern: str,
    listen: Callable[[PubSub], Awaitable[None]],
    *,
    backoff_s: tuple[float, float],
    confirmed: Callable[[], int],
    lost: Callable[[Exception], None],
) -> None:
    """Follow ``pattern`` on a connection of its own until cancelled.

    Args:
        client: the Redis to subscribe on.
        pattern: the PSUBSCRIBE pattern.
        listen: reads the subscription; returns only by an exception.
        backoff_s: the wait before subscribing again: first, longest (doubling between).
        confirmed: how many subscriptions Redis has confirmed so far (``listen`` counts
            them): one confirmed since the last try starts the backoff afresh.
        lost: told of each failure (a Redis error, or a bug: either way, subscribe again).
    """
    low, high = backoff_s
    delay = low
    while True:
        before = confirmed()
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe(pattern)
            await listen(pubsub)
        except Exception as exc:
            lost(exc)
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_S):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        if confirmed() != before:
            delay = low  # it was subscribed for a while: start the backoff afresh
        await asyncio.sleep(delay)
        delay = min(delay * 2, high)
