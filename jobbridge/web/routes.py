"""The route table: every route named, dashboard routes under the configured prefix."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from jobbridge.web import (
    api,
    bulk_api,
    bulk_views,
    census_views,
    compare_views,
    search_views,
    series_api,
    views,
)

STATIC_DIR = Path(__file__).parent / "static"
#: the action segment of action URLs
ACTIONS = "{action:retry|discard|cancel|stop|revoke}"


def setup_routes(app: web.Application, prefix: str) -> None:
    """Register every route. ``prefix`` is "" or "/seg[/seg...]" (never a trailing slash)."""
    p = prefix
    router = app.router
    # HTML. Literal sub-paths ("counters") come before the {id} routes they would match.
    router.add_get(f"{p}/jobs", views.overview, name="overview")
    router.add_get(f"{p}/jobs/counters", views.overview_counters, name="overview_counters")
    router.add_get(f"{p}/jobs/{{source}}", views.source_page, name="source")
    router.add_get(
        f"{p}/jobs/{{source}}/counters", views.source_counters_fragment, name="source_counters"
    )
    router.add_get(f"{p}/jobs/{{source}}/{{id}}", views.job_page, name="job")
    router.add_post(f"{p}/jobs/{{source}}/{{id}}/{ACTIONS}", views.act, name="action")
    router.add_get(f"{p}/audit", views.audit_page, name="audit")
    router.add_get(f"{p}/search", search_views.search_page, name="search")
    router.add_get(f"{p}/charts", series_api.overview_charts, name="charts")
    router.add_get(f"{p}/charts/{{source}}", series_api.source_charts, name="charts_source")
    router.add_get(f"{p}/login", views.login_form, name="login")
    router.add_post(f"{p}/login", views.login, name="login_post")
    router.add_post(f"{p}/logout", views.logout, name="logout")
    # one list's page of a source page, for its live tab (three segments: no job route)
    router.add_get(
        f"{p}/jobs/{{source}}/lists/{{list}}", views.job_list_fragment, name="source_list"
    )
    router.add_get(f"{p}/census/{{source}}", census_views.card, name="census")
    router.add_post(f"{p}/census/{{source}}", census_views.start, name="census_start")
    router.add_static(f"{p}/static", STATIC_DIR, name="static")
    # bulk pages (issue 19): a dry run, its confirm, progress and summary
    bulk_page = f"{p}/bulk/{{source}}"
    router.add_post(bulk_page, bulk_views.start, name="bulk_start")
    router.add_get(f"{bulk_page}/{{run}}", bulk_views.page, name="bulk_page")
    router.add_get(f"{bulk_page}/{{run}}/progress", bulk_views.progress, name="bulk_progress")
    router.add_post(f"{bulk_page}/{{run}}/confirm", bulk_views.confirm, name="bulk_confirm")
    router.add_post(f"{bulk_page}/{{run}}/cancel", bulk_views.cancel, name="bulk_cancel")
    # JSON API.
    router.add_get(f"{p}/api/openapi.json", api.openapi, name="api_openapi")
    router.add_get(f"{p}/api/sources", api.sources, name="api_sources")
    router.add_get(f"{p}/api/sources/{{source}}/snapshot", api.snapshot, name="api_snapshot")
    router.add_get(f"{p}/api/sources/{{source}}/jobs/{{id}}", api.job, name="api_job")
    router.add_post(f"{p}/api/sources/{{source}}/jobs/{{id}}/{ACTIONS}", api.act, name="api_action")
    router.add_get(f"{p}/api/sources/{{source}}/series", series_api.series, name="api_series")
    router.add_get(f"{p}/api/counters", api.counters, name="api_counters")
    router.add_get(f"{p}/api/compare", compare_views.api_compare, name="api_compare")
    router.add_get(f"{p}/api/audit", api.audit, name="api_audit")
    router.add_get(f"{p}/api/search", search_views.api_search, name="api_search")
    census = f"{p}/api/sources/{{source}}/queues/{{queue:.+}}/census"
    router.add_post(census, census_views.api_start, name="api_census_start")
    router.add_get(census, census_views.api_result, name="api_census")
    census_views.install(app)
    bulk = f"{p}/api/sources/{{source}}/bulk"
    router.add_post(bulk, bulk_api.start, name="api_bulk_start")
    router.add_get(f"{bulk}/{{run}}", bulk_api.read, name="api_bulk")
    router.add_post(f"{bulk}/{{run}}/confirm", bulk_api.confirm, name="api_bulk_confirm")
    router.add_post(f"{bulk}/{{run}}/cancel", bulk_api.cancel, name="api_bulk_cancel")
    # Root machine endpoints.
    router.add_get("/healthz", api.healthz, name="healthz")
    router.add_get("/readyz", api.readyz, name="readyz")
    router.add_get("/metrics", api.metrics, name="metrics")
    router.add_get("/actuator/jobs", api.actuator, name="actuator_jobs")
    # Convenience redirects to the overview.
    router.add_get(f"{p}/", views.index, name="index_slash")
    if p:
        router.add_get(p, views.index, name="index")
        router.add_get("/", views.index, name="root")
