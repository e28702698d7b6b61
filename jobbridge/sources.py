"""Builds the adapters for the configured sources, each by its system's registry entry, and
detects which systems keep keys in a Redis (``serve --redis URL``, ``doctor``) with bounded
work at start-up, and for ``serve --redis`` again in the background (:class:`Redetection`),
never in a request. A sentinel:// URL gets a client that asks the sentinels for the master
(:class:`_MasterPool`; docs/operations.md, Redis Sentinel).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from jobbridge.adapters import Detected, registry
from jobbridge.adapters.contract import JobAdapter
from jobbridge.adapters.redis_errors import redis_errors
from jobbridge.config_values import RESERVED_SOURCE_NAMES, parse_key_prefix
from jobbridge.errors import ConfigError, SourceUnavailable
from jobbridge.model import System
from jobbridge.redis_urls import is_sentinel_url, parse_sentinel_url, redact_url
from jobbridge.settings import Settings, SourceConfig
from jobbridge.text import clean, quoted

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: Sources of one system detection makes at the most (prefixes in sorted order); name any
#: others in a config file. Anyone who can write a key can make a prefix look like Autumn's.
DETECT_SOURCE_LIMIT = 20
#: Characters a source name may not hold (config_values.py allows ``[A-Za-z0-9_.-]{1,64}``).
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
#: Prefixes whose name copies them but for ':' -> '-' (how detection has always named them).
_NAME_SAFE_OR_COLON = re.compile(r"[A-Za-z0-9_.:-]+")
_DASHES = re.compile(r"-{2,}")
_NAME_MAX = 64
#: Hex digits of the prefix's SHA-256 that end a name which had to be cut or changed.
_NAME_DIGEST = 8

#: Options of every client: timeouts, so a dead Redis fails fast instead of hanging a page.
_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 3,
    "socket_timeout": 5,
    "health_check_interval": 30,
    "retry_on_timeout": False,
    # Job ids and key names that are not UTF-8 round-trip (jobbridge.adapters.fields.key_text).
    "encoding_errors": "surrogateescape",
}
#: Seconds a master address the sentinels gave is trusted before a pooled connection is
#: handed out again. After a failover the old master takes writes until Sentinel turns it
#: into a replica (10 s and more, measured), and redis-py would go on using its connections.
SENTINEL_RECHECK_S = 1.0


def connect(
    url: str, *, sentinel_master: str | None = None, sentinel_password: str | None = None
) -> Redis:
    """An asyncio client with timeouts, so a dead Redis fails fast instead of hanging a page.

    Args:
        url: redis://, rediss://, unix://, or kombu's sentinel:// (then the client talks to
            the master the sentinels name, and follows a failover).
        sentinel_master: the master's name for a sentinel:// URL; else its ``?master=``.
        sentinel_password: the sentinels' own password, if they require one.

    Raises:
        ConfigError: a sentinel:// URL that is malformed or names no master.
    """
    if not is_sentinel_url(url):
        return redis.asyncio.Redis.from_url(url, **_CLIENT_OPTIONS)
    parsed = parse_sentinel_url(url)
    master = sentinel_master or parsed.master
    if master is None:
        raise ConfigError(
            f"{redact_url(url)}: a sentinel:// URL needs the master's name"
            " (sentinel_master, or ?master=<name> in the URL)"
        )
    sentinel_options = {
        "socket_connect_timeout": _CLIENT_OPTIONS["socket_connect_timeout"],
        "socket_timeout": _CLIENT_OPTIONS["socket_timeout"],
        "password": sentinel_password,
        # redis-py's Redis() retries 3 times with backoff (seconds) by default; a sentinel that
        # does not answer is skipped for the next one instead, as from_url clients never retry.
        "retry": Retry(NoBackoff(), 0),
    }
    sentinels = _Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call,unused-ignore]
    client = sentinels.master_for(
        master,
        connection_pool_class=_MasterPool,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **_CLIENT_OPTIONS,
    )
    return cast("Redis", client)


class _Sentinel(Sentinel):
    """redis-py's Sentinel whose "no master" error says which sentinels said what."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        """The master's address, from the first sentinel that names it up.

        Raises:
            MasterNotFoundError: no sentinel answered, none knows the name, or those that
                know it report it down.
        """
        unknown: list[str] = []
        down: list[str] = []
        failed: list[str] = []
        for index, sentinel in enumerate(self.sentinels):
            kwargs = sentinel.connection_pool.connection_kwargs
            where = f"{kwargs.get('host')}:{kwargs.get('port')}"
            try:
                masters = await sentinel.sentinel_masters()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                failed.append(f"{where}: {exc}")
                continue
            # A dict by name in RESP2, which jobbridge's clients speak.
            state = cast("dict[str, dict[str, Any]]", masters).get(service_name)
            if state is None:
                unknown.append(where)
            elif not self.check_master_state(state, service_name):
                down.append(where)
            else:
                # As redis-py does: ask the sentinel that answered first next time.
                self.sentinels[0], self.sentinels[index] = sentinel, self.sentinels[0]
                return state["ip"], int(state["port"])
        raise MasterNotFoundError(_no_master(service_name, unknown, down, failed))


def _no_master(name: str, unknown: list[str], down: list[str], failed: list[str]) -> str:
    """Why no sentinel gave a master: each kind of answer, with the sentinels that gave it."""
    reasons: list[str] = []
    if down:
        reasons.append(f"Sentinel reports master {name!r} down (asked {', '.join(down)})")
    if unknown:
        reasons.append(f"Sentinel knows no master named {name!r} (asked {', '.join(unknown)})")
    if failed:
        lead = "" if reasons else f"no sentinel answered for master {name!r}: "
        reasons.append(lead + "; ".join(failed))
    return "; ".join(reasons)


class _MasterPool(SentinelConnectionPool):
    """The master's connections, checked against the sentinels as they are handed out.

    redis-py asks the sentinels only when it opens a connection, so after a failover it keeps
    sending commands (actions too) to the old master for as long as that one accepts them. A
    pooled connection handed out more than :data:`SENTINEL_RECHECK_S` after the last answer
    asks again first: a changed address closes the idle connections (redis-py's own
    :meth:`get_master_address`); any connection handed out that is connected elsewhere than
    the last address given is closed too, and reconnects. Closing the client closes the
    connections to the sentinels as well.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call,unused-ignore]
        self._asked_at = float("-inf")

    async def get_master_address(self) -> Any:
        address = await super().get_master_address()  # type: ignore[no-untyped-call,unused-ignore]
        self._asked_at = time.monotonic()
        return address

    async def ensure_connection(self, connection: Any) -> None:
        # A connection that is not connected yet asks the sentinels as it connects.
        if connection.is_connected:
            if time.monotonic() - self._asked_at >= SENTINEL_RECHECK_S:
                await self.get_master_address()
            # One that was in use when the address changed came back connected to the old one.
            if (connection.host, connection.port) != tuple(self.master_address or ()):
                await connection.disconnect()
        await super().ensure_connection(connection)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


def build_adapter(config: SourceConfig, client: Redis, results: Redis | None = None) -> JobAdapter:
    """The adapter of one configured source (``results``: a Celery source's result backend
    client, when it is not the broker's)."""
    spec = registry.systems().get(config.system)
    if spec is None:
        raise ConfigError(
            f"sources: system {config.system!r} of source {config.name!r} is not supported yet "
            f"(supported: {', '.join(registry.names())})"
        )
    return spec.build(config, client, results)


def build_adapters(configs: Sequence[SourceConfig]) -> dict[str, JobAdapter]:
    """Adapters for all sources; sources on the same Redis URL (and Sentinel master) share
    one client."""
    clients: dict[tuple[str, str | None, str | None], Redis] = {}
    adapters: dict[str, JobAdapter] = {}

    def client_of(url: str, master: str | None, password: str | None) -> Redis:
        key = (url, master, password)
        client = clients.get(key)
        if client is None:
            client = clients[key] = connect(url, sentinel_master=master, sentinel_password=password)
        return client

    for config in configs:
        client = client_of(config.redis_url, config.sentinel_master, config.sentinel_password)
        results = None
        if config.result_backend_url and config.result_backend_url != config.redis_url:
            results = client_of(config.result_backend_url, None, None)
        adapters[config.name] = build_adapter(config, client, results)
    return adapters


async def detect(
    url: str, *, sentinel_master: str | None = None, sentinel_password: str | None = None
) -> list[Detected]:
    """Which systems keep keys in this Redis.

    Args:
        url: as for :func:`connect`; a sentinel:// URL names its master with ``?master=``
            unless ``sentinel_master`` does.

    Returns:
        What was found; Autumn's prefixes with the default one first, then in sorted order.

    Raises:
        SourceUnavailable: the Redis could not be reached (or a sentinel:// URL names no
            master).
    """
    try:
        client = connect(url, sentinel_master=sentinel_master, sentinel_password=sentinel_password)
    except ConfigError as exc:
        raise SourceUnavailable("detect", str(exc)) from exc
    try:
        async with redis_errors("detect"):
            return await _detect(client)
    finally:
        await client.aclose()


async def _detect(client: Redis) -> list[Detected]:
    found: list[Detected] = []
    for spec in registry.systems().values():
        if spec.detect is not None:
            found += await spec.detect(client)
    return found


def detected_sources(
    url: str, detected: Sequence[Detected]
) -> tuple[list[SourceConfig], list[str]]:
    """Source configs for the supported systems detection found, and notes on what was left out.

    Each system's prefixes are taken in ``detected``'s order up to ``DETECT_SOURCE_LIMIT``;
    prefixes a config file could not name (spaces, a trailing ':') are left out. Sources are
    named as :func:`_source_names` says; the key prefix is kept exactly.
    """
    by_system: dict[System, list[str]] = {}
    for item in detected:
        if item.supported:
            by_system.setdefault(item.system, []).append(item.key_prefix)
    configs: list[SourceConfig] = []
    notes: list[str] = []
    for system, found in by_system.items():
        shown = registry.title(system)
        prefixes: list[str] = []
        left_out: list[str] = []
        for prefix in found:
            (prefixes if _configurable_prefix(prefix, system) else left_out).append(prefix)
        if left_out:
            examples = ", ".join(quoted(p, 120) for p in left_out[:3])
            notes.append(
                f"left out {len(left_out)} {shown} prefixes a config file could not name either "
                f"(spaces or a trailing ':'): {examples}{', …' if len(left_out) > 3 else ''}"
            )
        if len(prefixes) > DETECT_SOURCE_LIMIT:
            notes.append(
                f"found {len(prefixes)} {shown} prefixes; watching the first "
                f"{DETECT_SOURCE_LIMIT} in sorted order; name the others in a config file "
                "([[sources]])"
            )
            prefixes = prefixes[:DETECT_SOURCE_LIMIT]
        names = _source_names(system, prefixes)
        configs += [
            SourceConfig(name=names[p], system=system, redis_url=url, key_prefix=p)
            for p in prefixes
        ]
    return configs, notes


def _configurable_prefix(prefix: str, system: System) -> bool:
    """Whether a config file's ``key_prefix`` could hold this prefix (the same check)."""
    try:
        parse_key_prefix(prefix, "key_prefix", system)
    except ConfigError:
        return False
    return True


def _source_names(system: System, prefixes: Sequence[str]) -> dict[str, str]:
    """Unique source names for one system's prefixes (given in sorted order), each valid as a
    configured name and stable for the same set of prefixes.

    The default prefix is named after the system; another is "<system>-<prefix>" with every
    character a name may not hold turned into '-', as detection has always named prefixes
    made of letters, digits, '_', '.', '-' and ':'. A prefix whose name had to be cut to 64
    characters or lost other characters, or whose name another prefix holds (the one it copies
    exactly, without ':', keeps it), ends in a digest of its exact prefix instead.
    """
    default = registry.system(system).default_key_prefix
    plain = {
        p: system if p == (default or "") else f"{system}-{_NAME_UNSAFE.sub('-', p)}"
        for p in prefixes
    }
    claims: dict[str, list[str]] = {}
    for prefix, name in plain.items():
        faithful = prefix == (default or "") or _NAME_SAFE_OR_COLON.fullmatch(prefix) is not None
        if faithful and len(name) <= _NAME_MAX and name not in RESERVED_SOURCE_NAMES:
            claims.setdefault(name, []).append(prefix)
    names: dict[str, str] = {}
    for name, claimants in claims.items():
        exact = [p for p in claimants if ":" not in p or p == (default or "")]
        if len(claimants) == 1 or exact:
            names[(exact or claimants)[0]] = name
    taken = set(names.values()) | RESERVED_SOURCE_NAMES
    for prefix in prefixes:
        if prefix in names:
            continue
        digest = hashlib.sha256(prefix.encode("utf-8", "surrogatepass")).hexdigest()
        stem = _DASHES.sub("-", plain[prefix])
        # Crafted prefixes can take the digest name too; counting up always finds a free one.
        for n in itertools.count(1):
            suffix = f"-{digest[:_NAME_DIGEST]}" + (f"-{n}" if n > 1 else "")
            name = stem[: _NAME_MAX - len(suffix)].rstrip("-") + suffix
            if name not in taken:
                break
        names[prefix] = name
        taken.add(name)
    return names


async def resolve_sources(settings: Settings) -> tuple[Settings, list[str]]:
    """Settings whose sources are configured: detection fills them in for ``--redis URL``.

    A Redis that is down or holds nothing recognisable is not fatal: jobbridge then watches
    Autumn's default prefix there, and the pages say when Redis is unreachable.

    Returns:
        The settings to serve, and notes for the operator about what detection decided (one
        line each, cleaned of control characters).
    """
    url = settings.detect_url
    if settings.sources or not url:
        return settings, []
    notes: list[str] = []
    # What --redis watches when nothing is found (the first system: Autumn).
    usual = registry.fallback()
    usual_prefix = usual.default_key_prefix or ""
    try:
        found = await detect(url)
    except SourceUnavailable as exc:
        found = []
        notes.append(
            f"{clean(redact_url(url))} is unreachable ({clean(exc.detail)}); watching "
            f"{usual.title}'s default prefix {usual_prefix!r} until it answers"
        )
    for item in found:
        if not item.supported:
            notes.append(
                f"found {item.system} keys ({clean(item.evidence, 200)}), "
                "which jobbridge does not read yet"
            )
    configs, left_out = detected_sources(url, found)
    notes += left_out
    if not configs:
        if found or not notes:
            notes.append(
                f"no {usual.title} keys found; watching the default prefix {usual_prefix!r}"
            )
        configs = [SourceConfig(name=usual.name, system=usual.name, redis_url=url)]
    for config in configs:
        notes.append(
            f"source {config.name}: {config.system} at prefix "
            f"{quoted(config.effective_key_prefix, 120)}"
        )
    return replace(settings, sources=tuple(configs)), notes


class Redetection:
    """``serve --redis URL``'s detection, repeated in the background: each round is one
    bounded detection (the probes and SCANs of start-up, each SCAN at most
    ``detection.DETECT_SCAN_LIMIT`` keys), and a system found at a prefix no source watches yet
    becomes a new source, named as start-up would have named it, logged once.

    Sources are only added, never dropped (a queue that empties keeps its source); a system
    already at ``DETECT_SOURCE_LIMIT`` sources gets no more, and a prefix whose name another
    source holds is left for a config file. Configured sources (``[[sources]]``) never come
    here: only ``--redis`` detects.
    """

    def __init__(self, url: str, serving: Sequence[SourceConfig], *, interval_s: float) -> None:
        """Args:
        url: the Redis ``--redis`` named.
        serving: the sources served already (start-up's detection, or its fallback).
        interval_s: seconds between two rounds.
        """
        self.url = url
        self.interval_s = interval_s
        self._watched = {(s.system, s.effective_key_prefix) for s in serving}
        self._names = {s.name for s in serving}
        self._per_system: dict[str, int] = {}
        for source in serving:
            self._per_system[source.system] = self._per_system.get(source.system, 0) + 1
        #: notes logged already (each once)
        self._said: set[str] = set()
        self._client: Redis | None = None
        #: whether the last round failed (an outage is logged once)
        self.failing = False
        #: rounds completed
        self.rounds = 0

    async def new_sources(self) -> list[tuple[SourceConfig, str]]:
        """One round: the sources to add, each with the evidence detection gave.

        Raises:
            SourceUnavailable: the Redis did not answer.
        """
        if self._client is None:
            try:
                self._client = connect(self.url)
            except ConfigError as exc:
                raise SourceUnavailable("detect", str(exc)) from exc
        async with redis_errors("detect"):
            found = await _detect(self._client)
        evidence = {(d.system, d.key_prefix): d.evidence for d in found if d.supported}
        # Start-up said already what jobbridge does not read and which prefixes it left out
        # (doctor says it too); a round says only what it adds, or why it does not.
        configs, _ = detected_sources(self.url, found)
        new: list[tuple[SourceConfig, str]] = []
        for config in configs:
            where = (config.system, config.effective_key_prefix)
            if where in self._watched:
                continue
            shown = quoted(config.effective_key_prefix, 120)
            if self._per_system.get(config.system, 0) >= DETECT_SOURCE_LIMIT:
                self._say(
                    f"found {config.system} at prefix {shown} but already watching "
                    f"{DETECT_SOURCE_LIMIT} {config.system} sources; name it in a config file"
                )
                continue
            if config.name in self._names:
                self._say(
                    f"found {config.system} at prefix {shown}, whose source name "
                    f"{config.name} another source holds; name it in a config file"
                )
                continue
            new.append((config, evidence.get(where, "")))
        return new

    def watching(self, config: SourceConfig, evidence: str) -> None:
        """Record that ``config`` is served from now on, and say so in the log (once)."""
        self._watched.add((config.system, config.effective_key_prefix))
        self._names.add(config.name)
        self._per_system[config.system] = self._per_system.get(config.system, 0) + 1
        log.warning(
            "detected %s at prefix %s (%s): now watching source %s",
            config.system,
            quoted(config.effective_key_prefix, 120),
            clean(evidence, 200),
            config.name,
        )

    async def run(self, add: Callable[[SourceConfig], Awaitable[None]]) -> None:
        """Detect every ``interval_s`` until cancelled; ``add`` serves each new source. A
        failed round is logged once, then quietly retried until a round succeeds."""
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                await self.round(add)
        finally:
            await self.close()

    async def round(self, add: Callable[[SourceConfig], Awaitable[None]]) -> None:
        """One detection, and ``add`` of each new source; never raises but for a cancel."""
        try:
            for config, evidence in await self.new_sources():
                await add(config)
                self.watching(config, evidence)
        except SourceUnavailable as exc:
            if not self.failing:
                log.warning(
                    "background detection in %s failed: Redis unavailable (%s); retrying "
                    "quietly until it recovers",
                    clean(redact_url(self.url)),
                    clean(exc.detail),
                )
            self.failing = True
        except Exception:  # a bug here must not end the server's detection for good
            if not self.failing:
                log.exception("background detection in %s failed", clean(redact_url(self.url)))
            self.failing = True
        else:
            if self.failing:
                log.warning("background detection in %s recovered", clean(redact_url(self.url)))
            self.failing = False
            self.rounds += 1

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _say(self, note: str) -> None:
        if note not in self._said:
            self._said.add(note)
            log.warning("background detection: %s", note)
