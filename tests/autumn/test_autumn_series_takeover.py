"""Chart series across replicas: when the replica writing a source's series stops, another
takes the lease over and counts what finishes next, each job once."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
import redis.asyncio

from jobbridge.dev.autumn_emulator import Autumn
from tests.autumn.harness import AutumnHarness
from tests.contract.test_contract import eventually
from tests.contract.test_series import app_of, series, totals
from tests.web import seed

pytestmark = pytest.mark.redis


async def test_another_replica_takes_over_and_counts_once(
    redis_url: str, autumn_emulator: Autumn
) -> None:
    source = AutumnHarness(redis_url)
    seed.complete(autumn_emulator)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(app_of(source))

        async def one() -> None:
            assert totals(await series(first)) == (1, 0)

        await eventually(one, timeout=10)
        second_stack = AsyncExitStack()
        second = await second_stack.enter_async_context(app_of(source))
        try:
            await stack.aclose()  # the writer stops and gives the lease up
            seed.complete(autumn_emulator)
            seed.fail(autumn_emulator)

            async def three() -> None:
                assert totals(await series(second)) == (2, 1)

            await eventually(three, timeout=15)
            client = redis.asyncio.Redis.from_url(redis_url)
            try:
                holder = await client.get("jobbridge:series:contract:lease")
            finally:
                await client.aclose()
            assert holder is not None
        finally:
            await second_stack.aclose()
    source.close()
