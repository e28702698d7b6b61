"""Settings: a TOML file, ``JOBBRIDGE_*`` environment variables and CLI flags, merged and checked.

Precedence is file < environment < CLI flags. Every value is validated on every layer it appears
in, and every problem raises :class:`~jobbridge.errors.ConfigError` with one line that names where
the value came from (``sources[1].system``, ``JOBBRIDGE_PORT``, ``--port``) and what is wrong.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from jobbridge.errors import ConfigError, UnknownSource
from jobbridge.model import SYSTEMS, System

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")

#: Key prefix each system uses when a source does not set ``key_prefix``.
DEFAULT_KEY_PREFIXES: Mapping[System, str | None] = {
    "autumn": "autumn:jobs",
    "rq": "rq",
    "celery": None,
}

#: Environment variables, and the setting each one feeds.
ENV_CONFIG = "JOBBRIDGE_CONFIG"
ENV_SERVER: Mapping[str, str] = {
    "JOBBRIDGE_HOST": "host",
    "JOBBRIDGE_PORT": "port",
    "JOBBRIDGE_PREFIX": "prefix",
    "JOBBRIDGE_READ_ONLY": "read_only",
}
ENV_SESSION_SECRET = "JOBBRIDGE_SESSION_SECRET"
ENV_REDIS_URL = "JOBBRIDGE_REDIS_URL"

#: ``overrides`` keys accepted by :func:`load_settings`, and the flag named in error messages.
OVERRIDE_FLAGS: Mapping[str, str] = {
    "host": "--host",
    "port": "--port",
    "prefix": "--prefix",
    "read_only": "--read-only",
    "insecure_no_auth": "--insecure-no-auth",
    "redis_url": "--redis",
}

URL_SCHEMES = ("redis://", "rediss://", "unix://")
#: kombu's form for Redis behind Sentinel: "sentinel://[:password@]host:port[;sentinel://…][/db]"
SENTINEL_SCHEME = "sentinel://"
DEFAULT_SENTINEL_PORT = 26379
MIN_SESSION_SECRET_LEN = 16

_SOURCE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: source names whose dashboard URL would be another page's
RESERVED_SOURCE_NAMES = frozenset({"counters", ".", ".."})
#: a DNS name, an IPv4 address, a bracketed IPv6 address, or "*"
_HOST_NAME_RE = re.compile(r"\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\]")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_HEADER_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PREFIX_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~-]+")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

_T = TypeVar("_T")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
        ip = _parse_ip(address)
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
    #: host names browsers may reach the dashboard by (the Host header), lower case; empty
    #: means IP addresses and localhost only, unless API tokens are configured (any name)
    allowed_hosts: tuple[str, ...] = ()
    #: the Redis where replicas share sign-outs and failed sign-ins: None means the first
    #: source's, "" keeps them in this process only
    shared_state_url: str | None = None


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
    #: prefix of jobbridge's own keys (audit, lifecycle) in this Redis
    jobbridge_prefix: str = "jobbridge:"
    #: for a sentinel:// ``redis_url``: the name the sentinels know the master by (a
    #: ``?master=`` in the URL fills it in when the key is absent)
    sentinel_master: str | None = None
    #: for a sentinel:// ``redis_url``: the password of the sentinels themselves, when they
    #: require one (the URL's password is the master's)
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def effective_key_prefix(self) -> str:
        """``key_prefix``, or the system's default ("autumn:jobs", "rq", "" for celery)."""
        if self.key_prefix is not None:
            return self.key_prefix
        return DEFAULT_KEY_PREFIXES[self.system] or ""


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """A sentinel:// URL taken apart (:func:`parse_sentinel_url`)."""

    #: (host, port) of each sentinel, in the URL's order
    sentinels: tuple[tuple[str, int], ...]
    #: the master's name, when the URL gives ``?master=``
    master: str | None = None
    db: int = 0
    #: the master's (and its replicas') credentials, as in kombu; not the sentinels'
    username: str | None = None
    password: str | None = None


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


def is_loopback(host: str) -> bool:
    """Whether a listen host only accepts local connections.

    True for "localhost", any 127.x address and ::1 (also bracketed or IPv4-mapped).
    """
    name = host.strip().lower()
    if name in ("localhost", "localhost."):
        return True
    ip = _parse_ip(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
    return ip is not None and ip.is_loopback


def load_settings(
    path: Path | None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Read the config file, then apply environment variables, then CLI flags.

    Args:
        path: the TOML file; None means ``$JOBBRIDGE_CONFIG``, or no file when that is unset.
        env: environment variables; defaults to ``os.environ``. Empty values count as unset.
        overrides: CLI values already parsed, keyed as in :data:`OVERRIDE_FLAGS`;
            None values are ignored.

    Returns:
        The settings. When a Redis URL comes from the environment or the CLI and the file
        defines no sources, ``sources`` is empty and ``detect_url`` holds that URL; when the
        file defines exactly one source, the URL replaces that source's ``redis_url``.

    Raises:
        ConfigError: any problem, in one line naming the key.
    """
    env = os.environ if env is None else env
    cli = _cli_layer(overrides or {})
    if path is None and env.get(ENV_CONFIG):
        path = Path(env[ENV_CONFIG])
    data = _read_toml(path) if path is not None else {}
    _check_keys(data, ("server", "sources", "auth"), "")
    server_table = _table(data.get("server", {}), "server")
    auth_table = _table(data.get("auth", {}), "auth")
    server = _parse_server(server_table, _env_layer(env, ENV_SERVER), cli)
    auth = _parse_auth(auth_table, env)
    sources = _parse_sources(data.get("sources", []))
    redis_url = _pick(
        [_env_layer(env, {ENV_REDIS_URL: "redis_url"}), cli], "redis_url", _parse_url, None
    )
    if redis_url is None:
        return Settings(server=server, sources=sources, auth=auth)
    origin = _redis_url_origin(cli)
    if not sources:
        if is_sentinel_url(redis_url) and parse_sentinel_url(redis_url, origin).master is None:
            raise ConfigError(
                f"{origin}: a sentinel:// URL needs the master's name: ?master=<name>"
            )
        return Settings(server=server, sources=(), auth=auth, detect_url=redis_url)
    if len(sources) > 1:
        raise ConfigError(
            f"{origin}: cannot replace redis_url of {len(sources)} sources;"
            " set redis_url per source in the config file"
        )
    return Settings(server=server, sources=(_with_url(sources[0], redis_url, origin),), auth=auth)


# -- layers -------------------------------------------------------------------------------------

#: field name -> (raw value, where it came from)
_Layer = Mapping[str, tuple[object, str]]


def _cli_layer(overrides: Mapping[str, object]) -> _Layer:
    layer: dict[str, tuple[object, str]] = {}
    for key, value in overrides.items():
        if key not in OVERRIDE_FLAGS:
            raise ConfigError(f"overrides: unknown key {key!r}{_suggest(key, OVERRIDE_FLAGS)}")
        if value is not None:
            layer[key] = (value, OVERRIDE_FLAGS[key])
    return layer


def _env_layer(env: Mapping[str, str], names: Mapping[str, str]) -> _Layer:
    return {key: (env[var], var) for var, key in names.items() if env.get(var)}


def _file_layer(table: Mapping[str, object], path: str) -> _Layer:
    return {key: (value, _join(path, key)) for key, value in table.items()}


def _pick(
    layers: Sequence[_Layer], key: str, parse: Callable[[object, str], _T], default: _T
) -> _T:
    """Validate ``key`` on every layer that sets it; the last layer wins."""
    result = default
    for layer in layers:
        if key in layer:
            raw, origin = layer[key]
            result = parse(raw, origin)
    return result


def _redis_url_origin(cli: _Layer) -> str:
    if "redis_url" in cli:
        return cli["redis_url"][1]
    return ENV_REDIS_URL


def _with_url(source: SourceConfig, url: str, origin: str) -> SourceConfig:
    """``source`` with the Redis URL of a flag or the environment, every other field kept.

    The source's Sentinel keys apply only while the URL is a sentinel:// one; a ``?master=``
    in the new URL names the master over the file's ``sentinel_master``.
    """
    if not is_sentinel_url(url):
        return replace(source, redis_url=url, sentinel_master=None, sentinel_password=None)
    master = parse_sentinel_url(url, origin).master or source.sentinel_master
    if master is None:
        raise ConfigError(
            f"{origin}: a sentinel:// URL needs the master's name: ?master=<name>"
            f" (or sentinel_master in source {source.name!r})"
        )
    return replace(source, redis_url=url, sentinel_master=master)


# -- file ---------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid UTF-8 ({exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read ({exc.strerror or exc})") from exc


def _parse_server(table: Mapping[str, object], env: _Layer, cli: _Layer) -> ServerConfig:
    _check_keys(table, [f.name for f in fields(ServerConfig)], "server")
    layers = [_file_layer(table, "server"), env, cli]
    d = ServerConfig()
    return ServerConfig(
        host=_pick(layers, "host", _parse_host, d.host),
        port=_pick(layers, "port", _parse_port, d.port),
        prefix=_pick(layers, "prefix", _parse_prefix, d.prefix),
        read_only=_pick(layers, "read_only", _parse_bool, d.read_only),
        insecure_no_auth=_pick(layers, "insecure_no_auth", _parse_bool, d.insecure_no_auth),
        poll_interval_s=_pick(layers, "poll_interval_s", _positive_number, d.poll_interval_s),
        cache_ttl_s=_pick(layers, "cache_ttl_s", _non_negative_number, d.cache_ttl_s),
        allowed_hosts=_pick(layers, "allowed_hosts", _parse_host_names, d.allowed_hosts),
        shared_state_url=_pick(layers, "shared_state_url", _parse_url_or_off, None),
    )


def _parse_url_or_off(value: object, origin: str) -> str:
    """A Redis URL, or "" for none; a sentinel:// URL names its master (``?master=``)."""
    if isinstance(value, str) and not value.strip():
        return ""
    url = _parse_url(value, origin)
    if is_sentinel_url(url) and parse_sentinel_url(url, origin).master is None:
        raise ConfigError(f"{origin}: a sentinel:// URL here needs ?master=<name>")
    return url


_SOURCE_KEYS = (*(f.name for f in fields(SourceConfig)), "broker_url")
#: keys that only mean something for one system
_SYSTEM_ONLY_KEYS: Mapping[str, System] = {
    "broker_url": "celery",
    "result_backend_url": "celery",
}


def _parse_sources(raw: object) -> tuple[SourceConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("sources: must be an array of tables ([[sources]])")
    sources: list[SourceConfig] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        path = f"sources[{index}]"
        source = _parse_source(_table(item, path), path)
        if source.name in seen:
            raise ConfigError(
                f"{path}.name: duplicate source name {source.name!r}"
                f" (also sources[{seen[source.name]}])"
            )
        seen[source.name] = index
        sources.append(source)
    return tuple(sources)


def _parse_source(table: Mapping[str, object], path: str) -> SourceConfig:
    _check_keys(table, _SOURCE_KEYS, path)
    name = _parse_source_name(_required(table, "name", path), f"{path}.name")
    system = _parse_system(_required(table, "system", path), f"{path}.system")
    for key, only in _SYSTEM_ONLY_KEYS.items():
        if key in table and system != only:
            raise ConfigError(f"{path}.{key}: only applies to {only} sources (this is {system})")
    if "redis_url" in table and "broker_url" in table:
        raise ConfigError(f"{path}.broker_url: give redis_url or broker_url, not both")
    url_key = "broker_url" if "broker_url" in table else "redis_url"
    redis_url = _parse_url(_required(table, url_key, path), f"{path}.{url_key}")
    sentinel_master, sentinel_password = _parse_sentinel_keys(table, path, url_key, redis_url)
    key_prefix = None
    if "key_prefix" in table:
        key_prefix = parse_key_prefix(table["key_prefix"], f"{path}.key_prefix", system)
    source = SourceConfig(
        name=name,
        system=system,
        redis_url=redis_url,
        key_prefix=key_prefix,
        queues=_optional(table, "queues", path, _parse_queues),
        result_backend_url=_optional(table, "result_backend_url", path, _parse_url),
        jobbridge_prefix=_pick(
            [_file_layer(table, path)], "jobbridge_prefix", _non_empty_str, "jobbridge:"
        ),
        sentinel_master=sentinel_master,
        sentinel_password=sentinel_password,
    )
    own = source.effective_key_prefix
    if own and source.jobbridge_prefix.startswith(own + ":"):
        raise ConfigError(
            f"{path}.jobbridge_prefix: must not lie inside the {system} keyspace {own + ':'!r}"
        )
    return source


def _parse_sentinel_keys(
    table: Mapping[str, object], path: str, url_key: str, url: str
) -> tuple[str | None, str | None]:
    """``sentinel_master`` (or the URL's ``?master=``) and ``sentinel_password`` of a source.

    Raises:
        ConfigError: a sentinel:// URL without a master name, two different names, or either
            key beside a URL that is not sentinel://.
    """
    master = _optional(table, "sentinel_master", path, _parse_master_name)
    password = _optional(table, "sentinel_password", path, _non_empty_str)
    if not is_sentinel_url(url):
        for key in ("sentinel_master", "sentinel_password"):
            if key in table:
                raise ConfigError(f"{path}.{key}: only applies to a sentinel:// {url_key}")
        return None, None
    in_url = parse_sentinel_url(url, f"{path}.{url_key}").master
    if master is None and in_url is None:
        raise ConfigError(
            f"{path}.sentinel_master: required for a sentinel:// {url_key} (the name the"
            " sentinels monitor the master by; or ?master=<name> in the URL)"
        )
    if master is not None and in_url is not None and master != in_url:
        raise ConfigError(
            f"{path}.sentinel_master: {master!r} differs from ?master={in_url} in {url_key}"
        )
    return master or in_url, password


def _parse_auth(table: Mapping[str, object], env: Mapping[str, str]) -> AuthConfig:
    _check_keys(
        table,
        ("tokens", "proxy", "session_secret", "session_max_age_s", "max_failed_sign_ins"),
        "auth",
    )
    layers = [_file_layer(table, "auth"), _env_layer(env, {ENV_SESSION_SECRET: "session_secret"})]
    proxy = None
    if "proxy" in table:
        proxy = _parse_proxy(_table(table["proxy"], "auth.proxy"), "auth.proxy")
    return AuthConfig(
        tokens=_parse_tokens(table.get("tokens", [])),
        proxy=proxy,
        session_secret=_pick(layers, "session_secret", _parse_session_secret, None),
        session_max_age_s=_pick(layers, "session_max_age_s", _positive_int, 8 * 3600),
        max_failed_sign_ins=_pick(layers, "max_failed_sign_ins", _non_negative_int, 10),
    )


def _parse_tokens(raw: object) -> tuple[TokenConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("auth.tokens: must be an array of tables ([[auth.tokens]])")
    tokens: list[TokenConfig] = []
    for index, item in enumerate(raw):
        path = f"auth.tokens[{index}]"
        token = _parse_token(_table(item, path), path)
        for other_index, other in enumerate(tokens):
            if other.name == token.name:
                raise ConfigError(
                    f"{path}.name: duplicate token name {token.name!r}"
                    f" (also auth.tokens[{other_index}])"
                )
            if other.token_sha256 == token.token_sha256:
                raise ConfigError(f"{path}: same token as auth.tokens[{other_index}]")
        tokens.append(token)
    return tuple(tokens)


def _parse_token(table: Mapping[str, object], path: str) -> TokenConfig:
    _check_keys(table, ("name", "role", "token", "token_sha256"), path)
    name = _non_empty_str(_required(table, "name", path), f"{path}.name")
    role = _parse_role(_required(table, "role", path), f"{path}.role")
    if "token" in table and "token_sha256" in table:
        raise ConfigError(f"{path}: give token or token_sha256, not both")
    if "token" in table:
        digest = hash_token(_parse_plain_token(table["token"], f"{path}.token"))
    elif "token_sha256" in table:
        digest = _parse_sha256(table["token_sha256"], f"{path}.token_sha256")
    else:
        raise ConfigError(f"{path}.token_sha256: required key is missing (or give token)")
    return TokenConfig(name=name, role=role, token_sha256=digest)


def _parse_proxy(table: Mapping[str, object], path: str) -> ProxyAuthConfig:
    _check_keys(table, [f.name for f in fields(ProxyAuthConfig)], path)
    d = ProxyAuthConfig()
    layers = [_file_layer(table, path)]
    trusted = _parse_networks(
        _required(table, "trusted_addresses", path), f"{path}.trusted_addresses"
    )
    return ProxyAuthConfig(
        user_header=_pick(layers, "user_header", _parse_header, d.user_header),
        groups_header=_pick(layers, "groups_header", _parse_header, d.groups_header),
        trusted_addresses=trusted,
        operator_groups=_pick(layers, "operator_groups", _parse_str_list, d.operator_groups),
        viewer_groups=_pick(layers, "viewer_groups", _parse_str_list, d.viewer_groups),
    )


# -- table helpers ------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _table(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: must be a table (got {_got(value)})")
    return value


def _check_keys(table: Mapping[str, object], allowed: Collection[str], path: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{_join(path, key)}: unknown key{_suggest(key, allowed)}")


def _suggest(key: str, allowed: Collection[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _required(table: Mapping[str, object], key: str, path: str) -> object:
    if key not in table:
        raise ConfigError(f"{_join(path, key)}: required key is missing")
    return table[key]


def _optional(
    table: Mapping[str, object], key: str, path: str, parse: Callable[[object, str], _T]
) -> _T | None:
    return parse(table[key], _join(path, key)) if key in table else None


def _got(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- value parsers: (raw value, where it came from) -> checked value -----------------------------


def _parse_int(value: object, origin: str, low: int, high: int | None, what: str) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or number < low or (high is not None and number > high):
        raise ConfigError(f"{origin}: must be {what} (got {_got(value)})")
    return number


def _parse_port(value: object, origin: str) -> int:
    return _parse_int(value, origin, 1, 65535, "an integer 1..65535")


def _positive_int(value: object, origin: str) -> int:
    return _parse_int(value, origin, 1, None, "a positive integer")


def _non_negative_int(value: object, origin: str) -> int:
    return _parse_int(value, origin, 0, None, "an integer >= 0")


def _parse_number(value: object, origin: str, *, allow_zero: bool) -> float:
    what = "a number >= 0" if allow_zero else "a number > 0"
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if (
        number is None
        or not math.isfinite(number)
        or number < 0
        or (number == 0 and not allow_zero)
    ):
        raise ConfigError(f"{origin}: must be {what} (got {_got(value)})")
    return number


def _positive_number(value: object, origin: str) -> float:
    return _parse_number(value, origin, allow_zero=False)


def _non_negative_number(value: object, origin: str) -> float:
    return _parse_number(value, origin, allow_zero=True)


def _parse_bool(value: object, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ConfigError(f"{origin}: must be a boolean (true/false, 1/0, yes/no) (got {_got(value)})")


def _parse_str(value: object, origin: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: must be a string (got {_got(value)})")
    return value


def _non_empty_str(value: object, origin: str) -> str:
    text = _parse_str(value, origin)
    if not text.strip():
        raise ConfigError(f"{origin}: must not be empty")
    return text


def _parse_str_list(value: object, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{origin}: must be an array of strings (got {_got(value)})")
    return tuple(_non_empty_str(item, f"{origin}[{i}]") for i, item in enumerate(value))


def _parse_host(value: object, origin: str) -> str:
    host = _parse_str(value, origin).strip()
    if not host or any(ch.isspace() for ch in host):
        raise ConfigError(
            f"{origin}: must be a host name or address, e.g. 127.0.0.1 or 0.0.0.0"
            f" (got {_got(value)})"
        )
    return host


def _parse_prefix(value: object, origin: str) -> str:
    """Normalise to "" or "/seg/seg": "admin" -> "/admin", "/admin/" -> "/admin", "/" -> ""."""
    text = _parse_str(value, origin).strip()
    prefix = ("/" + text.lstrip("/") if not text.startswith("/") else text).rstrip("/")
    segments = prefix.split("/")[1:]
    if any(not _PREFIX_SEGMENT_RE.fullmatch(s) or s in (".", "..") for s in segments):
        raise ConfigError(f"{origin}: must be a URL path like /admin (got {_got(value)})")
    return prefix


def _parse_url(value: object, origin: str) -> str:
    url = _parse_str(value, origin).strip()
    if is_sentinel_url(url):
        parse_sentinel_url(url, origin)
    elif not url.startswith(URL_SCHEMES):
        shown = _got(redact_url(url))
        raise ConfigError(
            f"{origin}: must start with redis://, rediss:// or unix://, or be a sentinel:// URL"
            f" (got {shown})"
        )
    return url


#: the credentials of each address of a sentinel:// URL (a password may hold ';')
_SENTINEL_CREDENTIALS = re.compile(r"(^|;)([^/@;]*//)?[^/@]*@")


def redact_url(url: str) -> str:
    """Hide credentials before a URL goes into an error message (every address of a
    sentinel:// URL)."""
    if is_sentinel_url(url):
        return _SENTINEL_CREDENTIALS.sub(lambda m: m[1] + (m[2] or "") + "***@", url)
    return re.sub(r"^([^/@]*//)?[^/@]*@", lambda m: (m.group(1) or "") + "***@", url)


def is_sentinel_url(url: str) -> bool:
    """Whether a Redis URL names sentinels (kombu's sentinel:// form) rather than a server."""
    return url.startswith(SENTINEL_SCHEME)


def parse_sentinel_url(url: str, origin: str = "redis_url") -> SentinelUrl:
    """Take apart kombu's "sentinel://[user:password@]host[:port][;sentinel://…][/db][?master=]".

    The credentials, ``/db`` and ``?master=`` may be given on any one address (or repeated
    the same on several); the port defaults to 26379.

    Raises:
        ConfigError: naming ``origin``: an address that is not sentinel:// or has no host, a
            bad port or database, an option other than ``master``, or two addresses that
            disagree.
    """
    sentinels: list[tuple[str, int]] = []
    given: dict[str, str] = {}
    # Whole, so that a password holding ';' is hidden too.
    shown = _got(redact_url(url))
    for part in url.split(";"):
        try:
            parts = urlsplit(part.strip())
            port = parts.port
        except ValueError:
            raise ConfigError(f"{origin}: not a valid sentinel:// address (got {shown})") from None
        if parts.scheme != "sentinel" or not parts.hostname or parts.fragment:
            raise ConfigError(
                f"{origin}: each ';'-separated address must be sentinel://host[:port] (got {shown})"
            )
        sentinels.append((parts.hostname, port or DEFAULT_SENTINEL_PORT))
        for key, value in _sentinel_url_values(parts, origin):
            if given.setdefault(key, value) != value:
                raise ConfigError(f"{origin}: the sentinel addresses give different {key}s")
    return SentinelUrl(
        sentinels=tuple(sentinels),
        master=given.get("master"),
        db=int(given.get("db", "0")),
        username=given.get("username"),
        password=given.get("password"),
    )


def _sentinel_url_values(parts: SplitResult, origin: str) -> list[tuple[str, str]]:
    """What one address of a sentinel:// URL gives besides its host and port."""
    values: list[tuple[str, str]] = []
    if parts.username:
        values.append(("username", unquote(parts.username)))
    if parts.password:
        values.append(("password", unquote(parts.password)))
    path = parts.path.strip("/")
    if path:
        if not path.isdigit():
            raise ConfigError(f"{origin}: the database must be a number (got {_got(path)})")
        values.append(("db", str(int(path))))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "master":
            raise ConfigError(
                f"{origin}: unknown option {key!r} (a sentinel:// URL takes only ?master=<name>)"
            )
        values.append(("master", _parse_master_name(value, f"{origin} (?master=)")))
    return values


def _parse_master_name(value: object, origin: str) -> str:
    name = _parse_str(value, origin)
    if not name or not name.isprintable() or any(ch.isspace() for ch in name):
        raise ConfigError(
            f"{origin}: must be the master's name as the sentinels know it, without spaces"
            f" (got {_got(value)})"
        )
    return name


def _parse_source_name(value: object, origin: str) -> str:
    name = _parse_str(value, origin)
    if not _SOURCE_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{origin}: must be 1-64 characters of letters, digits, '_', '.', '-'"
            f" (got {_got(value)})"
        )
    if name in RESERVED_SOURCE_NAMES:
        # /jobs/counters is the overview's fragment; browsers rewrite "." and ".." in URLs.
        raise ConfigError(f"{origin}: {name!r} is reserved (its page URL means something else)")
    return name


def _parse_host_names(value: object, origin: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower().rstrip(".") for n in _parse_str_list(value, origin))
    for index, name in enumerate(names):
        if not _HOST_NAME_RE.fullmatch(name):
            raise ConfigError(
                f"{origin}[{index}]: must be a host name or address without port or scheme,"
                f' e.g. jobs.example.com, or "*" for any (got {_got(name)})'
            )
    return names


def _parse_system(value: object, origin: str) -> System:
    for system in SYSTEMS:
        if value == system:
            return system
    raise ConfigError(f"{origin}: must be one of {', '.join(SYSTEMS)} (got {_got(value)})")


def _parse_role(value: object, origin: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise ConfigError(f"{origin}: must be viewer or operator (got {_got(value)})")


def parse_key_prefix(value: object, origin: str, system: System) -> str:
    """A source's key prefix, checked as a config file's is (detection checks found ones too).

    Raises:
        ConfigError: empty, with whitespace or a trailing ':' (Autumn and RQ prefixes).
    """
    prefix = _parse_str(value, origin)
    if system == "celery":
        return prefix
    if not prefix or prefix.endswith(":") or any(ch.isspace() for ch in prefix):
        raise ConfigError(
            f"{origin}: must be non-empty, without spaces or a trailing ':' (got {_got(value)})"
        )
    return prefix


def _parse_queues(value: object, origin: str) -> tuple[str, ...]:
    queues = _parse_str_list(value, origin)
    if not queues:
        raise ConfigError(f"{origin}: must not be empty (leave it out to discover queues)")
    for index, queue in enumerate(queues):
        if queue in queues[:index]:
            raise ConfigError(f"{origin}[{index}]: duplicate queue {queue!r}")
    return queues


def _parse_sha256(value: object, origin: str) -> str:
    digest = _parse_str(value, origin).strip()
    if not _HEX64_RE.fullmatch(digest):
        # Never echo the value: it may be a plain token put in the wrong key.
        raise ConfigError(f"{origin}: must be 64 hex characters (a SHA-256 digest)")
    return digest.lower()


def _parse_plain_token(value: object, origin: str) -> str:
    token = _parse_str(value, origin)
    if not token or any(ch.isspace() for ch in token):
        raise ConfigError(f"{origin}: must be non-empty and contain no whitespace")
    return token


def _parse_session_secret(value: object, origin: str) -> str:
    secret = _parse_str(value, origin)
    if len(secret) < MIN_SESSION_SECRET_LEN:
        raise ConfigError(f"{origin}: must be at least {MIN_SESSION_SECRET_LEN} characters")
    return secret


def _parse_header(value: object, origin: str) -> str:
    name = _parse_str(value, origin)
    if not _HEADER_RE.fullmatch(name):
        raise ConfigError(f"{origin}: must be an HTTP header name (got {_got(value)})")
    return name


def _parse_networks(value: object, origin: str) -> tuple[str, ...]:
    entries = _parse_str_list(value, origin)
    if not entries:
        raise ConfigError(f"{origin}: must list at least one proxy address")
    networks: list[str] = []
    for index, entry in enumerate(entries):
        try:
            network: _Network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"{origin}[{index}]: must be an IP address or CIDR network (got {entry!r})"
            ) from None
        networks.append(str(network))
    return tuple(networks)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
