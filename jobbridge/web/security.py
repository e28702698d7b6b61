"""Authentication, roles, signed sessions, CSRF tokens and request-origin checks.

Who a request comes from is decided here, in this order:

1. ``Authorization: Bearer <token>``: a configured API token (a wrong one is a 401, never a
   fall-back to the cookie);
2. identity headers from a trusted reverse proxy (only when the TCP peer is one of
   ``auth.proxy.trusted_addresses``);
3. the signed session cookie a token login created;
4. with no authentication configured, everyone is an anonymous operator (the CLI refuses to
   listen on a non-loopback address in that mode, see :func:`check_bind_allowed`).

Every comparison of a secret uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

from aiohttp import web

from jobbridge.config import AuthConfig, Role, ServerConfig, Settings, TokenConfig, is_loopback
from jobbridge.errors import ConfigError
from jobbridge.web.shared_state import SharedState
from jobbridge.web.throttle import SignInThrottle

COOKIE_NAME = "jobbridge_session"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "X-CSRF-Token"
#: longest credential or identity header value looked at
MAX_CREDENTIAL_CHARS = 4096
MAX_IDENTITY_CHARS = 256
MAX_FLASH_CHARS = 600
#: signed-out sessions remembered at once (see Security.revoke)
MAX_REVOKED_SESSIONS = 100_000
#: methods that change nothing and so need no CSRF or origin check
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Method = Literal["anonymous", "token", "session", "proxy"]
FlashKind = Literal["ok", "error"]


class AuthError(Exception):
    """A request that must be refused: 401 (who are you?), 403 (you may not) or 429 (wait)."""

    def __init__(
        self, status: int, code: str, message: str, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


def too_many_attempts(wait_s: int) -> AuthError:
    return AuthError(
        429,
        "too_many_attempts",
        f"Too many failed sign-ins from this address; try again in {wait_s} s.",
        retry_after_s=wait_s,
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request, and what they may do."""

    #: token name, proxy user name, or "anonymous"
    name: str
    role: Role
    method: Method
    #: the TCP peer, kept for the audit log of anonymous actions
    remote: str = ""

    @property
    def can_operate(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        if self.method == "anonymous":
            return f"anonymous@{self.remote}" if self.remote else "anonymous"
        kind = "token" if self.method in ("token", "session") else "proxy"
        return f"{kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Session:
    """What the signed session cookie holds. Signed, not encrypted: nothing secret goes in."""

    #: random id; the CSRF token is derived from it
    sid: str
    #: expiry, Unix seconds
    exp: int
    #: fingerprint of the token a login exchanged (None: an anonymous, CSRF-only session)
    token_fp: str | None = None
    #: a one-shot message for the next page: (kind, text)
    flash: tuple[FlashKind, str] | None = None


@dataclass(slots=True)
class SessionState:
    """A request's session: the one its cookie carried, and whether to write a new one."""

    session: Session | None
    dirty: bool = False
    clear: bool = False
    _popped: bool = field(default=False, repr=False)

    def set(self, session: Session) -> None:
        self.session = session
        self.dirty = True
        self.clear = False

    def delete(self) -> None:
        self.session = None
        self.dirty = False
        self.clear = True


class Security:
    """Session signing, CSRF tokens and authentication for one app."""

    def __init__(self, settings: Settings) -> None:
        self.auth: AuthConfig = settings.auth
        self.prefix = settings.server.prefix
        secret = (settings.auth.session_secret or "").encode() or secrets.token_bytes(32)
        self._session_key = _derive(secret, b"jobbridge session cookie v1")
        self._csrf_key = _derive(secret, b"jobbridge csrf token v1")
        self._fingerprint_key = _derive(secret, b"jobbridge token fingerprint v1")
        self.max_age_s = settings.auth.session_max_age_s
        self.throttle = SignInThrottle(max_failures=settings.auth.max_failed_sign_ins)
        #: session ids signed out before their cookie expires: sid -> expiry (Unix seconds)
        self._revoked: dict[str, int] = {}
        #: what this process shares with the other replicas (sign-outs, failed sign-ins)
        self.shared = SharedState.for_settings(
            settings, key_fingerprint=_b64(_derive(secret, b"jobbridge replica check v1"))[:16]
        )

    # ------------------------------------------------------------ sessions

    @property
    def cookie_path(self) -> str:
        return self.prefix or "/"

    def in_cookie_scope(self, path: str) -> bool:
        """Whether browsers send the session cookie with a request for ``path``."""
        return not self.prefix or path == self.prefix or path.startswith(self.prefix + "/")

    def new_session(self, token: TokenConfig | None = None) -> Session:
        return Session(
            sid=secrets.token_urlsafe(24),
            exp=int(time.time()) + self.max_age_s,
            token_fp=self.fingerprint(token) if token is not None else None,
        )

    def encode(self, session: Session) -> str:
        body = {"sid": session.sid, "exp": session.exp}
        if session.token_fp is not None:
            body["fp"] = session.token_fp
        if session.flash is not None:
            body["flash"] = list(session.flash)
        data = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{data}.{_b64(self._mac(data))}"

    def decode(self, value: str | None) -> Session | None:
        """The session a cookie value carries, or None if it is forged, malformed or expired."""
        if not value or len(value) > MAX_CREDENTIAL_CHARS or "." not in value:
            return None
        data, _, mac = value.rpartition(".")
        if not hmac.compare_digest(_b64(self._mac(data)).encode(), mac.encode()):
            return None
        try:
            body = json.loads(_unb64(data))
            sid, exp = body["sid"], body["exp"]
            fp = body.get("fp")
            flash = body.get("flash")
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not isinstance(sid, str) or not isinstance(exp, int) or exp <= time.time():
            return None
        if fp is not None and not isinstance(fp, str):
            return None
        if sid in self._revoked:
            return None
        return Session(sid=sid, exp=exp, token_fp=fp, flash=_parse_flash(flash))

    async def session_from_cookie(self, value: str | None) -> Session | None:
        """The session a cookie carries, unless it was signed out here or on another replica."""
        session = self.decode(value)
        if session is not None and await self.shared.signed_out(session.sid):
            return None
        return session

    async def sign_out(self, session: Session) -> None:
        """End ``session`` on this process and on every replica sharing state."""
        self.revoke(session)
        await self.shared.sign_out(session.sid, session.exp)

    async def sign_in_wait_s(self, client: str) -> int:
        """Seconds ``client`` must wait before a sign-in counts, across replicas."""
        local = self.throttle.wait_s(client)
        shared = await self.shared.wait_s(client, self.throttle.max_failures)
        return max(local, shared)

    async def sign_in_failed(self, client: str) -> None:
        """Count a failed sign-in by ``client`` here and for every replica."""
        self.throttle.failed(client)
        await self.shared.failed(client)

    def revoke(self, session: Session) -> None:
        """End ``session`` on this process: a copy of its cookie no longer signs anyone in.

        Kept in memory until the cookie would have expired anyway (:meth:`sign_out` also
        tells the other replicas, through Redis).
        """
        now = int(time.time())
        self._revoked[session.sid] = session.exp
        if len(self._revoked) > MAX_REVOKED_SESSIONS:
            self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
            # Still too many: forget the oldest sign-outs first.
            while len(self._revoked) > MAX_REVOKED_SESSIONS:
                del self._revoked[next(iter(self._revoked))]

    def _mac(self, data: str) -> bytes:
        return hmac.new(self._session_key, data.encode(), hashlib.sha256).digest()

    def set_cookie(self, response: web.StreamResponse, session: Session, secure: bool) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.encode(session),
            max_age=max(0, session.exp - int(time.time())),
            path=self.cookie_path,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    def clear_cookie(self, response: web.StreamResponse, secure: bool) -> None:
        response.set_cookie(
            COOKIE_NAME,
            "",
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            path=self.cookie_path,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    def ensure_session(self, state: SessionState) -> Session:
        """The request's session, creating an anonymous one (for its CSRF token) if needed."""
        if state.session is None:
            state.set(self.new_session())
        assert state.session is not None
        return state.session

    def flash(self, state: SessionState, kind: FlashKind, text: str) -> None:
        session = self.ensure_session(state)
        state.set(replace(session, flash=(kind, text[:MAX_FLASH_CHARS])))

    @staticmethod
    def pop_flash(state: SessionState) -> tuple[FlashKind, str] | None:
        """The pending flash message, removed from the session (once per request)."""
        session = state.session
        if session is None or session.flash is None or state._popped:
            return None
        state._popped = True
        state.set(replace(session, flash=None))
        return session.flash

    # ------------------------------------------------------------ CSRF

    def csrf_token(self, session: Session) -> str:
        mac = hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).digest()
        return _b64(mac)

    def csrf_valid(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token or len(token) > MAX_CREDENTIAL_CHARS:
            return False
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())

    # ------------------------------------------------------------ authentication

    def fingerprint(self, token: TokenConfig) -> str:
        """A keyed digest naming a configured token inside a session cookie."""
        message = f"{token.name}\x00{token.role}\x00{token.token_sha256}".encode()
        return _b64(hmac.new(self._fingerprint_key, message, hashlib.sha256).digest()[:18])

    def token_for_fingerprint(self, fingerprint: str) -> TokenConfig | None:
        found: TokenConfig | None = None
        for token in self.auth.tokens:
            if hmac.compare_digest(self.fingerprint(token).encode(), fingerprint.encode()):
                found = found or token
        return found

    async def authenticate(self, request: web.Request, session: Session | None) -> Principal | None:
        """Who made the request; None when nobody is authenticated.

        Raises:
            AuthError: a bearer token that matches no configured token (401), or a proxy user
                in none of the allowed groups (403); a bearer token from an address with too
                many recent failures (429, whether the token is right or not).
        """
        remote = request.remote or ""
        bearer = bearer_token(request) if self.auth.tokens else None
        if bearer is not None:
            client = self.client_address(request)
            wait_s = await self.sign_in_wait_s(client)
            if wait_s:
                raise too_many_attempts(wait_s)
            token = self.auth.token_for(bearer)
            if token is None:
                await self.sign_in_failed(client)
                raise AuthError(401, "unauthorized", "The bearer token is not valid.")
            return Principal(name=token.name, role=token.role, method="token", remote=remote)
        proxy = self.proxy_principal(request)
        if proxy is not None:
            return proxy
        if session is not None and session.token_fp is not None:
            token = self.token_for_fingerprint(session.token_fp)
            if token is not None:
                return Principal(name=token.name, role=token.role, method="session", remote=remote)
        if not self.auth.enabled:
            return Principal(name="anonymous", role="operator", method="anonymous", remote=remote)
        return None

    def proxy_principal(self, request: web.Request) -> Principal | None:
        proxy = self.auth.proxy
        if proxy is None or not proxy.is_trusted(request.remote or ""):
            return None
        user = request.headers.get(proxy.user_header, "").strip()
        if not user:
            return None
        if len(user) > MAX_IDENTITY_CHARS or not user.isprintable():
            raise AuthError(403, "forbidden", "The proxy user name is not acceptable.")
        raw_groups = request.headers.get(proxy.groups_header, "")[:MAX_CREDENTIAL_CHARS]
        groups = {g.strip() for g in raw_groups.split(",") if g.strip()}
        role: Role
        if groups & set(proxy.operator_groups):
            role = "operator"
        elif not proxy.viewer_groups or groups & set(proxy.viewer_groups):
            role = "viewer"
        else:
            raise AuthError(
                403, "forbidden", f"User {user} is in none of the groups allowed to view jobs."
            )
        return Principal(name=user, role=role, method="proxy", remote=request.remote or "")

    def forwarded_host_trusted(self, request: web.Request) -> bool:
        proxy = self.auth.proxy
        return proxy is not None and proxy.is_trusted(request.remote or "")

    def client_address(self, request: web.Request) -> str:
        """Who a sign-in attempt counts against: the peer, or behind a trusted proxy the
        address that proxy saw (the last ``X-Forwarded-For`` hop, the only one it vouches for),
        so that one guesser cannot lock out everyone behind the proxy. IPv6 addresses count
        by their /64, which one host can otherwise cycle through at will."""
        address = request.remote or ""
        if self.forwarded_host_trusted(request):
            hops = request.headers.get("X-Forwarded-For", "")[:MAX_CREDENTIAL_CHARS].split(",")
            address = hops[-1].strip()[:64] or address
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.IPv6Network((ip, 64), strict=False))
        return str(ip)

    def is_https(self, request: web.Request) -> bool:
        """Whether the browser talks HTTPS (directly, or to a trusted TLS-terminating proxy);
        session cookies are then marked Secure."""
        if request.secure:
            return True
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https" and self.forwarded_host_trusted(request)


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; "" for a malformed one.

    Other schemes (say, Basic credentials an upstream proxy passes through) are not ours: None.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_CREDENTIAL_CHARS else ""


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


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, label, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse_flash(value: object) -> tuple[FlashKind, str] | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    kind, text = value
    if kind not in ("ok", "error") or not isinstance(text, str):
        return None
    return ("ok" if kind == "ok" else "error", text[:MAX_FLASH_CHARS])
