"""Typed keys of what the web app keeps on the application and on each request."""

from __future__ import annotations

from aiohttp import web

from jobbridge.service import JobService
from jobbridge.settings import Settings
from jobbridge.web.auth import Principal, Security
from jobbridge.web.metrics import Metrics
from jobbridge.web.sessions import SessionState

#: the settings the app was created with
SETTINGS = web.AppKey("jobbridge_settings", Settings)
#: the service every handler reads and acts through
SERVICE = web.AppKey("jobbridge_service", JobService)
#: session signing, CSRF tokens and authentication
SECURITY = web.AppKey("jobbridge_security", Security)
#: this app's own Prometheus registry
METRICS = web.AppKey("jobbridge_metrics", Metrics)

#: who made the request (None while unauthenticated)
PRINCIPAL = web.RequestKey("jobbridge_principal", Principal)
#: the request's signed session cookie, loaded and (when changed) written back
SESSION = web.RequestKey("jobbridge_session", SessionState)
