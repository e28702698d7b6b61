"""RQ's fixtures: real ``rq worker`` processes on the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rq.rq_support import WorkerPool, worker_pool


@pytest.fixture
def rq_workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerPool]:
    """Real ``rq worker`` processes for one test, stopped however the test ends."""
    with worker_pool(redis_url, tmp_path / "workers") as workers:
        yield workers
