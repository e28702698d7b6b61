"""The web layer: HTML dashboard, JSON API, health, readiness and metrics endpoints.

``create_app(settings)`` in :mod:`jobbridge.web.app` builds the aiohttp application.
"""

from __future__ import annotations
