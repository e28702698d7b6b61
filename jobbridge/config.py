"""Loads :class:`~jobbridge.settings.Settings` from a TOML file, ``JOBBRIDGE_*`` environment
variables and CLI flags, merged and checked.

Precedence is file < environment < CLI flags. Every value is validated on every layer it appears
in, and every problem raises :class:`~jobbridge.errors.ConfigError` with one line that names where
the value came from (``sources[1].system``, ``JOBBRIDGE_PORT``, ``--port``) and what is wrong.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TypeVar

from jobbridge.adapters import system, systems
from jobbridge.config_values import (
    got,
    non_empty_str,
    non_negative_int,
    non_negative_number,
    parse_bool,
    parse_header,
    parse_host,
    parse_host_names,
    parse_key_prefix,
    parse_networks,
    parse_plain_token,
    parse_port,
    parse_prefix,
    parse_queues,
    parse_role,
    parse_session_secret,
    parse_sha256,
    parse_source_name,
    parse_str_list,
    parse_system,
    positive_int,
    positive_number,
)
from jobbridge.errors import ConfigError
from jobbridge.redis_urls import (
    is_sentinel_url,
    parse_master_name,
    parse_redis_url,
    parse_sentinel_url,
)
from jobbridge.settings import (
    AuthConfig,
    ProxyAuthConfig,
    ServerConfig,
    Settings,
    SourceConfig,
    TokenConfig,
    hash_token,
)

#: Environment variables, and the setting each one feeds.
ENV_CONFIG = "JOBBRIDGE_CONFIG"
ENV_SERVER: Mapping[str, str] = {
    "JOBBRIDGE_HOST": "host",
    "JOBBRIDGE_PORT": "port",
    "JOBBRIDGE_PREFIX": "prefix",
    "JOBBRIDGE_READ_ONLY": "read_only",
    "JOBBRIDGE_READ_TIMEOUT_S": "read_timeout_s",
    "JOBBRIDGE_DETECT_INTERVAL_S": "detect_interval_s",
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

_T = TypeVar("_T")


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
        [_env_layer(env, {ENV_REDIS_URL: "redis_url"}), cli], "redis_url", parse_redis_url, None
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
        host=_pick(layers, "host", parse_host, d.host),
        port=_pick(layers, "port", parse_port, d.port),
        prefix=_pick(layers, "prefix", parse_prefix, d.prefix),
        read_only=_pick(layers, "read_only", parse_bool, d.read_only),
        insecure_no_auth=_pick(layers, "insecure_no_auth", parse_bool, d.insecure_no_auth),
        poll_interval_s=_pick(layers, "poll_interval_s", positive_number, d.poll_interval_s),
        cache_ttl_s=_pick(layers, "cache_ttl_s", non_negative_number, d.cache_ttl_s),
        read_timeout_s=_pick(layers, "read_timeout_s", positive_number, d.read_timeout_s),
        allowed_hosts=_pick(layers, "allowed_hosts", parse_host_names, d.allowed_hosts),
        shared_state_url=_pick(layers, "shared_state_url", _parse_url_or_off, None),
        detect_interval_s=_pick(
            layers, "detect_interval_s", non_negative_number, d.detect_interval_s
        ),
    )


def _parse_url_or_off(value: object, origin: str) -> str:
    """A Redis URL, or "" for none; a sentinel:// URL names its master (``?master=``)."""
    if isinstance(value, str) and not value.strip():
        return ""
    url = parse_redis_url(value, origin)
    if is_sentinel_url(url) and parse_sentinel_url(url, origin).master is None:
        raise ConfigError(f"{origin}: a sentinel:// URL here needs ?master=<name>")
    return url


def _system_only_keys() -> dict[str, list[str]]:
    """Keys that only mean something for some systems, and those systems (the registry's)."""
    owners: dict[str, list[str]] = {}
    for spec in systems().values():
        for key in (*(k.name for k in spec.config_keys), *spec.url_aliases):
            owners.setdefault(key, []).append(spec.name)
    return owners


def source_keys() -> list[str]:
    """Every key a source table may hold, for the unknown-key check and its suggestion."""
    declared = [f.name for f in fields(SourceConfig) if f.name != "options"]
    extra = [k for k in _system_only_keys() if k not in declared]
    return [*declared, *extra]


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
    _check_keys(table, source_keys(), path)
    name = parse_source_name(_required(table, "name", path), f"{path}.name")
    system_name = parse_system(_required(table, "system", path), f"{path}.system")
    spec = system(system_name)
    for key, owners in _system_only_keys().items():
        if key in table and system_name not in owners:
            only = " or ".join(owners)
            raise ConfigError(
                f"{path}.{key}: only applies to {only} sources (this is {system_name})"
            )
    aliases = [k for k in spec.url_aliases if k in table]
    if "redis_url" in table and aliases:
        raise ConfigError(f"{path}.{aliases[0]}: give redis_url or {aliases[0]}, not both")
    url_key = aliases[0] if aliases else "redis_url"
    redis_url = parse_redis_url(_required(table, url_key, path), f"{path}.{url_key}")
    sentinel_master, sentinel_password = _parse_sentinel_keys(table, path, url_key, redis_url)
    key_prefix = None
    if "key_prefix" in table:
        key_prefix = parse_key_prefix(table["key_prefix"], f"{path}.key_prefix", system_name)
    queues = _optional(table, "queues", path, parse_queues)
    own: dict[str, object] = {}
    options: list[tuple[str, object]] = []
    for declared in spec.config_keys:
        if declared.name in table:
            value = declared.parse(table[declared.name], _join(path, declared.name))
            if declared.field is None:
                options.append((declared.name, value))
            else:
                own[declared.field] = value
    source = SourceConfig(
        name=name,
        system=system_name,
        redis_url=redis_url,
        key_prefix=key_prefix,
        queues=queues,
        jobbridge_prefix=_pick(
            [_file_layer(table, path)], "jobbridge_prefix", non_empty_str, "jobbridge:"
        ),
        sentinel_master=sentinel_master,
        sentinel_password=sentinel_password,
        options=tuple(options),
    )
    if own:
        source = replace(source, **own)  # type: ignore[arg-type]
    prefix = source.effective_key_prefix
    if prefix and source.jobbridge_prefix.startswith(prefix + ":"):
        raise ConfigError(
            f"{path}.jobbridge_prefix: must not lie inside the {system_name} keyspace "
            f"{prefix + ':'!r}"
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
    master = _optional(table, "sentinel_master", path, parse_master_name)
    password = _optional(table, "sentinel_password", path, non_empty_str)
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
        session_secret=_pick(layers, "session_secret", parse_session_secret, None),
        session_max_age_s=_pick(layers, "session_max_age_s", positive_int, 8 * 3600),
        max_failed_sign_ins=_pick(layers, "max_failed_sign_ins", non_negative_int, 10),
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
    name = non_empty_str(_required(table, "name", path), f"{path}.name")
    role = parse_role(_required(table, "role", path), f"{path}.role")
    if "token" in table and "token_sha256" in table:
        raise ConfigError(f"{path}: give token or token_sha256, not both")
    if "token" in table:
        digest = hash_token(parse_plain_token(table["token"], f"{path}.token"))
    elif "token_sha256" in table:
        digest = parse_sha256(table["token_sha256"], f"{path}.token_sha256")
    else:
        raise ConfigError(f"{path}.token_sha256: required key is missing (or give token)")
    return TokenConfig(name=name, role=role, token_sha256=digest)


def _parse_proxy(table: Mapping[str, object], path: str) -> ProxyAuthConfig:
    _check_keys(table, [f.name for f in fields(ProxyAuthConfig)], path)
    d = ProxyAuthConfig()
    layers = [_file_layer(table, path)]
    trusted = parse_networks(
        _required(table, "trusted_addresses", path), f"{path}.trusted_addresses"
    )
    return ProxyAuthConfig(
        user_header=_pick(layers, "user_header", parse_header, d.user_header),
        groups_header=_pick(layers, "groups_header", parse_header, d.groups_header),
        trusted_addresses=trusted,
        operator_groups=_pick(layers, "operator_groups", parse_str_list, d.operator_groups),
        viewer_groups=_pick(layers, "viewer_groups", parse_str_list, d.viewer_groups),
    )


# -- table helpers ------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _table(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: must be a table (got {got(value)})")
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
