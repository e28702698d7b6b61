"""The census tests use the web tests' app factory."""

from __future__ import annotations

from tests.web.conftest import make_client

__all__ = ["make_client"]
