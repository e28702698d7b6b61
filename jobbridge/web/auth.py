"""Authentication and roles: API tokens, trusted proxy headers, session cookies, principals
(docs/security.md, Roles and sign-in). Secrets are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from jobbridge.settings import AuthConfig, Role, Settings, TokenConfig
from jobbridge.web.sessions import MAX_CREDENTIAL_CHARS, Session, Sessions
from jobbridge.web.throttle import SignInThrottle

MAX_IDENTITY_CHARS = 256

Method = Literal["anonymous", "token", "session", "proxy"]


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


class Security(Sessions):
    """Session signing, CSRF tokens and authentication for one app."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.auth: AuthConfig = settings.auth
        self.throttle = SignInThrottle(max_failures=settings.auth.max_failed_sign_ins)

    async def sign_in_wait_s(self, client: str) -> int:
        """Seconds ``client`` must wait before a sign-in counts, across replicas."""
        local = self.throttle.wait_s(client)
        shared = await self.shared.wait_s(client, self.throttle.max_failures)
        return max(local, shared)

    async def sign_in_failed(self, client: str) -> None:
        """Count a failed sign-in by ``client`` here and for every replica."""
        self.throttle.failed(client)
        await self.shared.failed(client)

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
