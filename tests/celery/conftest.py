"""Celery's fixtures: a client app and real ``celery worker`` processes on the test database.

celery_support is imported inside the fixtures so that collecting the other systems' tests
does not import Celery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def celery_app(redis_url: str) -> Iterator[Any]:
    """A Celery client app on the test Redis (broker and results), closed after the test."""
    from tests.celery.celery_support import client_app

    with client_app(redis_url) as app:
        yield app


@pytest.fixture
def celery_workers(redis_url: str, tmp_path: Path) -> Iterator[Any]:
    """Real ``celery worker`` processes of examples/celery_app.py, stopped after the test."""
    from tests.celery import celery_support

    with celery_support.celery_workers(redis_url, tmp_path / "celery") as pool:
        yield pool
