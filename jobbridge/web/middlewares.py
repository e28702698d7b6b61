"""Request pipeline, outermost first: metrics, session cookie, errors, origin check,
authentication, CSRF token. Plus the security headers every response carries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from jobbridge.errors import SourceUnavailable, UnknownSource
from jobbridge.web import keys
from jobbridge.web.auth import AuthError
from jobbridge.web.context import Ui
from jobbridge.web.request_checks import SAFE_METHODS, host_problem, origin_problem
from jobbridge.web.responses import HttpError, error_json, redirect
from jobbridge.web.sessions import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, Session, SessionState

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
STATIC_CACHE = "public, max-age=3600"
#: root paths anyone may read (probes)
PUBLIC_ROOT = frozenset({"/healthz", "/readyz"})
#: root paths answered as JSON (machine endpoints)
MACHINE_ROOT = frozenset({"/healthz", "/readyz", "/metrics", "/actuator/jobs"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Unprocessable",
    429: "Too many attempts",
    500: "Internal error",
    503: "Unavailable",
}


def prefix_of(request: web.Request) -> str:
    return request.app[keys.SETTINGS].server.prefix


def is_api(request: web.Request) -> bool:
    """Requests answered with JSON errors rather than pages."""
    path = request.path
    return path in MACHINE_ROOT or path.startswith(prefix_of(request) + "/api/")


def is_static(request: web.Request) -> bool:
    return request.path.startswith(prefix_of(request) + "/static/")


def is_public(request: web.Request) -> bool:
    """Paths served without authentication: probes, static files and the login page."""
    prefix = prefix_of(request)
    return (
        request.path in PUBLIC_ROOT
        or request.path == prefix + "/login"
        or request.path.startswith(prefix + "/static/")
    )


def is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


# ------------------------------------------------------------------------ middlewares


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.name or "unmatched"
        method = request.method if request.method in _METHODS else "OTHER"
        request.app[keys.METRICS].observe(route, method, status, time.perf_counter() - started)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the signed session cookie; write it back when a handler changed it.

    Only requests under the cookie's path take part: a response elsewhere (say, a 404 for
    /favicon.ico) never saw the cookie and must not replace it with a new session.
    """
    security = request.app[keys.SECURITY]
    if not security.in_cookie_scope(request.path):
        return await handler(request)
    state = SessionState(await security.session_from_cookie(request.cookies.get(COOKIE_NAME)))
    request[keys.SESSION] = state
    response = await handler(request)
    secure = security.is_https(request)
    if state.clear:
        security.clear_cookie(response, secure)
    elif state.dirty and state.session is not None:
        security.set_cookie(response, state.session, secure)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes an error page or JSON error; nothing leaks a stack trace."""
    try:
        return await handler(request)
    except HttpError as exc:
        return error_response(request, exc.status, exc.code, exc.message, exc.source, exc.headers)
    except AuthError as exc:
        return error_response(request, exc.status, exc.code, exc.message, headers=exc.headers)
    except UnknownSource:
        source = request.match_info.get("source", "")[:200]
        return error_response(request, 404, "not_found", f"Unknown source {source!r}.")
    except SourceUnavailable as exc:
        return error_response(
            request,
            503,
            "unavailable",
            f"The Redis of source {exc.source!r} is unavailable ({exc.detail}).",
            source=exc.source,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            return web.Response(status=exc.status, headers=exc.headers)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        code = "not_found" if exc.status == 404 else "http_error"
        return error_response(request, exc.status, code, exc.reason, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("error serving %s %s", request.method, request.path)
        return error_response(
            request, 500, "internal", "Something went wrong on our side; it has been logged."
        )


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse Host names a DNS-rebinding page could use (see :func:`host_problem`)."""
    if request.path not in PUBLIC_ROOT:
        settings = request.app[keys.SETTINGS]
        problem = host_problem(request.host, settings.server, settings.auth)
        if problem is not None:
            message = problem[:1].upper() + problem[1:] + "."
            if is_api(request):
                return error_json(400, "host_not_allowed", message)
            # Plain text, not the error page: that page would hand out a session and its
            # CSRF token to whoever the name belongs to.
            return web.Response(status=400, text=message + "\n", content_type="text/plain")
    return await handler(request)


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse state-changing requests a browser marks as cross-site, whoever sends them."""
    if request.method not in SAFE_METHODS and request.match_info.http_exception is None:
        security = request.app[keys.SECURITY]
        problem = origin_problem(request, security.forwarded_host_trusted(request))
        if problem is not None:
            raise HttpError(403, "cross_origin", problem[:1].upper() + problem[1:] + ".")
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    security = request.app[keys.SECURITY]
    public = is_public(request)
    try:
        principal = await security.authenticate(request, session_of(request))
    except AuthError:
        if not public:
            raise
        principal = None
    if principal is not None:
        request[keys.PRINCIPAL] = principal
    elif not public:
        return unauthenticated(request)
    return await handler(request)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """State-changing requests carry the session's CSRF token (bearer-token clients excepted)."""
    if request.method in SAFE_METHODS or request.match_info.http_exception is not None:
        return await handler(request)
    principal = request.get(keys.PRINCIPAL)
    if principal is not None and principal.method == "token":
        return await handler(request)
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        value = (await request.post()).get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    security = request.app[keys.SECURITY]
    session = session_of(request)
    if not security.csrf_valid(session, token):
        raise HttpError(403, "csrf", _csrf_refusal(request, session, token))
    return await handler(request)


def _csrf_refusal(request: web.Request, session: Session | None, token: str | None) -> str:
    """Why a state-changing request was refused, worded for who sent it: a script's API call
    with neither a session nor a CSRF token is told to use a token, a form what forms need.
    The check itself is the same for both."""
    if is_api(request) and session is None and token is None:
        return (
            "An API request without a browser session needs an API token: send "
            "Authorization: Bearer <token> (tokens are configured under [auth]; see "
            "docs/api.md). Nothing was changed."
        )
    return (
        "The form's security token is missing or wrong (reload the page and try again); "
        "nothing was changed."
    )


# ------------------------------------------------------------------------ responses


def session_of(request: web.Request) -> Session | None:
    state = request.get(keys.SESSION)
    return None if state is None else state.session


def unauthenticated(request: web.Request) -> web.StreamResponse:
    """401 JSON for API clients; the login page (keeping where they were) for browsers."""
    if is_api(request):
        response = error_json(
            401, "unauthorized", "Authentication required: send Authorization: Bearer <token>."
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="jobbridge"'
        return response
    login = request.app.router["login"].url_for()
    target = str(login)
    if request.method == "GET" and not is_htmx(request):
        target += "?" + urlencode({"next": request.path_qs})
    if is_htmx(request):
        response = error_json(401, "unauthorized", "Sign in again.")
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def error_response(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    source: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if is_api(request):
        response = error_json(status, code, message)
    else:
        response = _error_page(request, status, message, source)
    response.headers.update(headers or {})
    return response


def _error_page(
    request: web.Request, status: int, message: str, source: str | None
) -> web.Response:
    context = {
        "ui": Ui(request),
        "status": status,
        "title": _TITLES.get(status, "Error"),
        "message": message,
        "source": source,
    }
    try:
        return aiohttp_jinja2.render_template("error.html", request, context, status=status)
    except Exception:
        log.exception("error page failed to render")
        return web.Response(status=status, text=f"{status} {_TITLES.get(status, 'Error')}")


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers on every response; only static files may be cached."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if is_static(request) and response.status < 400:
        response.headers["Cache-Control"] = STATIC_CACHE
    else:
        response.headers["Cache-Control"] = "no-store"
