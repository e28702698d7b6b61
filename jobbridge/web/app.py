"""``create_app(settings)``: the aiohttp application of the dashboard, API and probes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import aiohttp_jinja2
import jinja2
from aiohttp import web

from jobbridge.service import JobService
from jobbridge.settings import Settings
from jobbridge.sources import Redetection, build_adapters
from jobbridge.text import no_surrogates
from jobbridge.web import keys
from jobbridge.web.auth import Security
from jobbridge.web.formatting import FILTERS
from jobbridge.web.metrics import Metrics
from jobbridge.web.middlewares import (
    auth_middleware,
    csrf_middleware,
    error_middleware,
    host_middleware,
    metrics_middleware,
    on_response_prepare,
    origin_middleware,
    session_middleware,
)
from jobbridge.web.routes import setup_routes

#: largest request body accepted (forms here are a few hundred bytes)
MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings, service: JobService | None = None) -> web.Application:
    """Build the app.

    Args:
        settings: the validated settings.
        service: a service to use (tests); when None, one is built from ``settings.sources``
            at start-up and closed at clean-up.

    Returns:
        The application, with the dashboard under ``settings.server.prefix`` and
        ``/healthz``, ``/readyz``, ``/metrics`` and ``/actuator/jobs`` at the root.
    """
    app = web.Application(
        middlewares=[
            metrics_middleware,
            session_middleware,
            error_middleware,
            host_middleware,
            origin_middleware,
            auth_middleware,
            csrf_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[keys.SETTINGS] = settings
    app[keys.SECURITY] = Security(settings)
    app[keys.METRICS] = Metrics()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("jobbridge.web"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates ship inside the package; no need to stat them on every render.
        auto_reload=False,
        # Whatever a template prints, a lone surrogate from job data must not make the page
        # unencodable (a 500 for the whole source).
        finalize=no_surrogates,
    )
    env.filters.update(FILTERS)
    app.on_startup.append(_compile_templates)
    app.cleanup_ctx.append(_shared_state_context)
    setup_routes(app, settings.server.prefix)
    app.on_response_prepare.append(on_response_prepare)
    if service is not None:
        app[keys.SERVICE] = service
    else:
        app.cleanup_ctx.append(_service_context)
    return app


def freeze_after_startup(app: web.Application) -> None:
    """For a process that serves one app (``jobbridge serve``, the demo): once it has started,
    move every object it holds to the garbage collector's permanent generation.

    Modules, compiled templates and scripts never become garbage, yet a full collection
    walks them all: 50,000 objects, 50 ms or more during which no request is served. Frozen,
    they are skipped, and a full collection walks only what requests made (a few ms).
    Not for processes that build many apps (tests): what they drop would never be collected.
    """

    async def freeze(_: web.Application) -> None:
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze)


async def _compile_templates(app: web.Application) -> None:
    """Compile every template before the first request: compiling one takes tens of ms,
    which the first viewer of each page would otherwise wait for, and so would every other
    request then in flight."""
    env = aiohttp_jinja2.get_env(app)
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)


async def _shared_state_context(app: web.Application) -> AsyncIterator[None]:
    """Share sign-outs and failed sign-ins with the other replicas for the app's lifetime."""
    shared = app[keys.SECURITY].shared
    await shared.start()
    try:
        yield
    finally:
        await shared.close()


async def _service_context(app: web.Application) -> AsyncIterator[None]:
    """Own a service for the app's lifetime: adapters and Redis clients opened and closed here."""
    settings = app[keys.SETTINGS]
    service = JobService(
        build_adapters(settings.sources),
        cache_ttl_s=settings.server.cache_ttl_s,
        read_only=settings.server.read_only,
        read_timeout_s=settings.server.read_timeout_s,
    )
    await service.start()
    app[keys.SERVICE] = service
    interval = settings.server.detect_interval_s
    if settings.detect_url is not None and interval > 0:
        # serve --redis URL: sources detected, not configured; detect again in the background
        service.redetect(Redetection(settings.detect_url, settings.sources, interval_s=interval))
    try:
        yield
    finally:
        await service.close()
