"""The settings jobbridge runs with: one frozen dataclass per table of the config file.

They are built and checked by :func:`jobbridge.config.load_settings`; a dataclass built here by
hand (tests, the demo) is taken as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from jobbridge.adapters import system
from jobbridge.addresses import parse_ip
from jobbridge.errors import UnknownSource
from jobbridge.model import System
from jobbridge.read_limits import DEFAULT_READ_TIMEOUT_S

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenConfig:
    """An API token. Only the SHA-256 digest of the token is kept."""

    #: label of the token's holder, shown in the audit log
    name: str
    role: Role
    #: lowercase hex SHA-256 of the token
    token_sha256: str

    def matches(self, token: str) -> bool:
        """Whether ``token`` is this token, compared in constant time."""
        return hmac.compare_digest(hash_token(token).encode(), self.token_sha256.encode())


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyAuthConfig:
    """Trust identity headers set by an authenticating reverse proxy."""

    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    #: peers whose headers are believed: IP addresses or CIDR networks (normalised, e.g. ``/32``)
    trusted_addresses: tuple[str, ...] = ()
    operator_groups: tuple[str, ...] = ("jobbridge-operators",)
    #: groups that may view; empty means any authenticated proxy user may view
    viewer_groups: tuple[str, ...] = ()

    def is_trusted(self, address: str) -> bool:
        """Whether a peer address (the TCP peer, never a header) is a trusted proxy.

        Args:
            address: an IPv4 or IPv6 address; IPv4-mapped IPv6 addresses are unwrapped.

        Returns:
            True when it lies in one of ``trusted_addresses``; False for anything unparsable.
        """
        ip = parse_ip(address)
        if ip is None:
            return False
        for entry in self.trusted_addresses:
            network = ipaddress.ip_network(entry, strict=False)
            if network.version == ip.version and ip in network:
                return True
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    """Who may use jobbridge: API tokens and/or a trusted proxy."""

    tokens: tuple[TokenConfig, ...] = ()
    proxy: ProxyAuthConfig | None = None
    #: signs session cookies; when None the server generates a random one per process
    session_secret: str | None = None
    session_max_age_s: int = 8 * 3600
    #: failed sign-ins (bearer or form) one address may make per minute; 0 = no limit
    max_failed_sign_ins: int = 10

    @property
    def enabled(self) -> bool:
        """True when any token or a proxy is configured."""
        return bool(self.tokens) or self.proxy is not None

    def token_for(self, token: str) -> TokenConfig | None:
        """The configured token equal to ``token``, or None.

        Every configured token is compared, in constant time, whatever matches first.
        """
        found: TokenConfig | None = None
        for candidate in self.tokens:
            if candidate.matches(token) and found is None:
                found = candidate
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """The HTTP server."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: URL path the app is mounted under: starts with "/" and never ends with one ("" = root)
    prefix: str = "/admin"
    #: refuse every action
    read_only: bool = False
    #: allow serving without auth (the server still refuses this on a non-loopback host)
    insecure_no_auth: bool = False
    poll_interval_s: float = 2.0
    cache_ttl_s: float = 1.0
    #: seconds a read of one source may take before it is reported "timed out" (slow): the
    #: sources on other Redis servers answer meanwhile, each server has its own read limit
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    #: host names browsers may reach the dashboard by (the Host header), lower case; empty
    #: means IP addresses and localhost only, unless API tokens are configured (any name)
    allowed_hosts: tuple[str, ...] = ()
    #: the Redis where replicas share sign-outs and failed sign-ins: None means the first
    #: source's, "" keeps them in this process only
    shared_state_url: str | None = None
    #: ``serve --redis``: seconds between background detections that add the systems which
    #: appeared since start-up (0: detect at start-up only)
    detect_interval_s: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceConfig:
    """One system instance jobbridge reads."""

    #: ``[A-Za-z0-9_.-]{1,64}``, unique across sources
    name: str
    system: System
    #: the Redis holding the system's keys (for celery: the broker URL)
    redis_url: str
    #: None means the system's default, see :attr:`effective_key_prefix`
    key_prefix: str | None = None
    #: queues to show, in order; None means discover them
    queues: tuple[str, ...] | None = None
    #: celery: where task results live, when not in the broker
    result_backend_url: str | None = None
    #: celery: the result backend's ``global_keyprefix`` (``result_backend_transport_options``)
    result_key_prefix: str = ""
    #: celery: kombu's ``sep`` and ``priority_steps`` broker transport options; None (not
    #: configured): kombu's default steps plus every step whose list the broker is found to hold
    sep: str = "\x06\x16"
    priority_steps: tuple[int, ...] | None = None
    #: prefix of jobbridge's own keys (audit, lifecycle) in this Redis
    jobbridge_prefix: str = "jobbridge:"
    #: for a sentinel:// ``redis_url``: the name the sentinels know the master by (a
    #: ``?master=`` in the URL fills it in when the key is absent)
    sentinel_master: str | None = None
    #: for a sentinel:// ``redis_url``: the password of the sentinels themselves, when they
    #: require one (the URL's password is the master's)
    sentinel_password: str | None = field(default=None, repr=False)
    #: the values of the keys the system declares for itself without a field here
    #: (``ConfigKey.field`` None), by key
    options: tuple[tuple[str, object], ...] = ()

    @property
    def effective_key_prefix(self) -> str:
        """``key_prefix``, or the system's default (its registry entry's; "" for none)."""
        if self.key_prefix is not None:
            return self.key_prefix
        return system(self.system).default_key_prefix or ""

    def option(self, key: str, default: object = None) -> object:
        """The value of a key the system declares for itself, or ``default``."""
        return dict(self.options).get(key, default)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything jobbridge was configured with."""

    server: ServerConfig = field(default_factory=ServerConfig)
    sources: tuple[SourceConfig, ...] = ()
    auth: AuthConfig = field(default_factory=AuthConfig)
    #: a Redis URL to auto-detect sources in (set when a URL was given but no sources were)
    detect_url: str | None = None

    def source(self, name: str) -> SourceConfig:
        """The source called ``name``.

        Raises:
            UnknownSource: no source has that name.
        """
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise UnknownSource(f"unknown source {name!r} (configured: {known})")


def hash_token(token: str) -> str:
    """The lowercase hex SHA-256 of a token, as ``token_sha256`` stores it."""
    return hashlib.sha256(token.encode()).hexdigest()
