"""Autumn's fixtures: the emulator (jobbridge.dev.autumn_emulator) on the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from jobbridge.dev.autumn_emulator import Autumn


@pytest.fixture
def autumn_emulator(redis_url: str) -> Iterator[Autumn]:
    """Autumn's producer side (the emulator) on this test's clean database."""
    client = redis.Redis.from_url(redis_url)
    yield Autumn(client)
    client.close()
