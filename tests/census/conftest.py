"""The census tests use the web tests' app factory and browser page."""

from __future__ import annotations

from tests.web.conftest import browser, make_client, page, problems

__all__ = ["browser", "make_client", "page", "problems"]
