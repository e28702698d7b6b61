"""Where requests may come from and send the browser, and where the server may listen.

The ``Host`` check (DNS rebinding), the ``Origin`` / ``Sec-Fetch-Site`` check (cross-site
requests), safe ``next`` redirects, and the refusal to serve a non-loopback address without
authentication.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from jobbridge.addresses import is_loopback
from jobbridge.errors import ConfigError
from jobbridge.settings import AuthConfig, ServerConfig, Settings

#: methods that change nothing and so need no CSRF or origin check
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_problem(request: web.Request, forwarded_host_trusted: bool = False) -> str | None:
    """Why a state-changing request looks cross-site, or None when it does not.

    ``Sec-Fetch-Site`` must be ``same-origin`` or ``none`` when a browser sends it, and an
    ``Origin`` header must name this very host (``X-Forwarded-Host`` counts only from a trusted
    proxy).
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site[:40]})"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    hosts = {_normal_host(request.host, request.scheme)}
    forwarded = request.headers.get("X-Forwarded-Host")
    if forwarded_host_trusted and forwarded:
        hosts.add(_normal_host(forwarded.split(",")[0].strip(), request.scheme))
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return "cross-origin request refused (Origin is not a web origin)"
    if _normal_host(parts.netloc, parts.scheme) not in hosts:
        return "cross-origin request refused (Origin does not match Host)"
    return None


def _normal_host(netloc: str, scheme: str) -> str:
    host = netloc.strip().lower()
    default = ":443" if scheme == "https" else ":80"
    return host.removesuffix(default)


def safe_next(target: str | None, prefix: str) -> str | None:
    """``target`` when it is a path inside this app (under ``prefix``), else None.

    Absolute URLs, scheme-relative ``//host`` paths, backslashes and control characters are
    refused, so a ``next`` parameter can never send the browser to another site.
    """
    if not target or len(target) > 2000:
        return None
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    if parts.scheme or parts.netloc:
        return None
    if prefix and not (parts.path == prefix or parts.path.startswith(prefix + "/")):
        return None
    return target


def check_bind_allowed(settings: Settings) -> None:
    """Refuse to serve a non-loopback address without authentication (unless told to).

    Raises:
        ConfigError: the host is not loopback, no auth is configured and
            ``insecure_no_auth`` is not set.
    """
    host = settings.server.host
    if is_loopback(host) or settings.auth.enabled or settings.server.insecure_no_auth:
        return
    raise ConfigError(
        f"refusing to listen on {host} without authentication; "
        "configure [[auth.tokens]] or pass --insecure-no-auth"
    )


def host_problem(host: str, server: ServerConfig, auth: AuthConfig) -> str | None:
    """Why a request's ``Host`` is refused, or None.

    The defence against DNS rebinding: a hostile page whose name is made to resolve to this
    server is same-origin with it in the browser; it can read what it fetches and send any
    header it likes. Its requests carry the hostile name, so unless a bearer token or session
    must be shown (``[[auth.tokens]]``), only names that cannot be rebound are accepted: IP
    addresses and ``localhost``. Proxy authentication does not count: the rebound page can set
    the proxy's user headers itself, and its requests may come from a trusted address. With
    ``allowed_hosts``, exactly those names are accepted.
    """
    name = _host_name(host)
    if not name:
        return "the request names no valid host"
    allowed = server.allowed_hosts
    if allowed:
        if "*" in allowed or name in {a.strip("[]") for a in allowed}:
            return None
    elif auth.tokens or name == "localhost" or name.endswith(".localhost") or _is_ip(name):
        return None
    return (
        f"the host name {name[:100]!r} is not allowed here; add it to [server] allowed_hosts"
        " (unless API tokens are configured, only IP addresses and localhost are accepted)"
    )


def _host_name(host: str) -> str:
    """The lower-case name of a Host header value ("name", "name:port", "[v6]:port"); "" when
    it is not one."""
    if not host or any(c in host for c in ",@/\\ \t") or len(host) > 300:
        return ""
    try:
        parts = urlsplit("//" + host)
        name = (parts.hostname or "").rstrip(".")
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return ""
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
