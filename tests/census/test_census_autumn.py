"""The census of an Autumn queue: jobs enqueued the way Autumn does (the emulator), counted
by name and by principal (the payload's ``principal_id``, else ``principal``, else
``user_id``)."""

from __future__ import annotations

import json

import pytest

from jobbridge.census.model import NO_PRINCIPAL, CensusState
from jobbridge.census.runner import plan_for, run_census, store_for
from jobbridge.settings import SourceConfig
from tests.census.support import adapter_of, counts

pytestmark = pytest.mark.redis


async def test_an_autumn_queue_is_counted_by_name_and_by_principal(
    autumn_emulator, redis_url, sync_redis
) -> None:
    for i in range(2_500):
        payload = {"principal_id": f"acct-{i % 4}"} if i % 5 else {"user_id": 7}
        autumn_emulator.enqueue("send_invoice" if i % 3 else "sync_ledger", payload, queue="bulk")
    autumn_emulator.enqueue("no_one", None, queue="bulk")
    # a record too long to read whole: its name still counts, its principal is not read
    big = autumn_emulator.enqueue(
        "big_job", {"principal_id": "x", "blob": "y" * 10_000}, queue="bulk"
    )
    assert big is not None and len(sync_redis.get(f"autumn:jobs:record:{big}")) > 10_000
    config = SourceConfig(name="orders", system="autumn", redis_url=redis_url)
    async with adapter_of(config) as adapter:
        store = store_for(adapter, "bulk")
        assert await store.take_lease("t")
        await run_census(plan_for(adapter, "bulk"), store, "t")
        result = await store.read()
    assert result is not None and result.state is CensusState.DONE
    names = {"send_invoice": 0, "sync_ledger": 0}
    principals: dict[str, int] = {}
    for i in range(2_500):
        names["send_invoice" if i % 3 else "sync_ledger"] += 1
        who = f"acct-{i % 4}" if i % 5 else "7"
        principals[who] = principals.get(who, 0) + 1
    principals[NO_PRINCIPAL] = 1
    assert counts(result) == {**names, "no_one": 1, "big_job": 1}
    assert result.principals is not None
    by_principal = {c.name: c.count for c in result.principals}
    assert by_principal.pop("(not read: record over 4,096 bytes)") == 1
    assert by_principal == principals
    assert result.read == 2_502 and result.missing == 0
    stored = sync_redis.hget("jobbridge:census:orders:bulk:result", "principals")
    assert json.loads(stored)[0][1] == max(principals.values())
    assert sync_redis.ttl("jobbridge:census:orders:bulk:result") > 23 * 3600
    assert not sync_redis.exists("jobbridge:census:orders:bulk:lease")  # given up at the end
