"""Parsers of single config values: (raw value, where it came from) -> checked value.

Each takes the value as TOML or an environment variable gives it, and ``origin``, the name
error messages start with (``sources[1].system``, ``JOBBRIDGE_PORT``, ``--port``); each raises
:class:`~jobbridge.errors.ConfigError` in one line saying what is wrong.
"""

from __future__ import annotations

import ipaddress
import math
import re

from jobbridge.adapters import names, system
from jobbridge.errors import ConfigError
from jobbridge.model import System
from jobbridge.settings import ROLES, Role

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

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def got(value: object) -> str:
    """How an error message shows a bad value: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_int(value: object, origin: str, low: int, high: int | None, what: str) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or number < low or (high is not None and number > high):
        raise ConfigError(f"{origin}: must be {what} (got {got(value)})")
    return number


def parse_port(value: object, origin: str) -> int:
    return _parse_int(value, origin, 1, 65535, "an integer 1..65535")


def positive_int(value: object, origin: str) -> int:
    return _parse_int(value, origin, 1, None, "a positive integer")


def non_negative_int(value: object, origin: str) -> int:
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
        raise ConfigError(f"{origin}: must be {what} (got {got(value)})")
    return number


def positive_number(value: object, origin: str) -> float:
    return _parse_number(value, origin, allow_zero=False)


def non_negative_number(value: object, origin: str) -> float:
    return _parse_number(value, origin, allow_zero=True)


def parse_bool(value: object, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ConfigError(f"{origin}: must be a boolean (true/false, 1/0, yes/no) (got {got(value)})")


def parse_str(value: object, origin: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: must be a string (got {got(value)})")
    return value


def non_empty_str(value: object, origin: str) -> str:
    text = parse_str(value, origin)
    if not text.strip():
        raise ConfigError(f"{origin}: must not be empty")
    return text


def parse_str_list(value: object, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{origin}: must be an array of strings (got {got(value)})")
    return tuple(non_empty_str(item, f"{origin}[{i}]") for i, item in enumerate(value))


def parse_host(value: object, origin: str) -> str:
    host = parse_str(value, origin).strip()
    if not host or any(ch.isspace() for ch in host):
        raise ConfigError(
            f"{origin}: must be a host name or address, e.g. 127.0.0.1 or 0.0.0.0"
            f" (got {got(value)})"
        )
    return host


def parse_prefix(value: object, origin: str) -> str:
    """Normalise to "" or "/seg/seg": "admin" -> "/admin", "/admin/" -> "/admin", "/" -> ""."""
    text = parse_str(value, origin).strip()
    prefix = ("/" + text.lstrip("/") if not text.startswith("/") else text).rstrip("/")
    segments = prefix.split("/")[1:]
    if any(not _PREFIX_SEGMENT_RE.fullmatch(s) or s in (".", "..") for s in segments):
        raise ConfigError(f"{origin}: must be a URL path like /admin (got {got(value)})")
    return prefix


def parse_source_name(value: object, origin: str) -> str:
    name = parse_str(value, origin)
    if not _SOURCE_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{origin}: must be 1-64 characters of letters, digits, '_', '.', '-'"
            f" (got {got(value)})"
        )
    if name in RESERVED_SOURCE_NAMES:
        # /jobs/counters is the overview's fragment; browsers rewrite "." and ".." in URLs.
        raise ConfigError(f"{origin}: {name!r} is reserved (its page URL means something else)")
    return name


def parse_host_names(value: object, origin: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower().rstrip(".") for n in parse_str_list(value, origin))
    for index, name in enumerate(names):
        if not _HOST_NAME_RE.fullmatch(name):
            raise ConfigError(
                f"{origin}[{index}]: must be a host name or address without port or scheme,"
                f' e.g. jobs.example.com, or "*" for any (got {got(name)})'
            )
    return names


def parse_system(value: object, origin: str) -> System:
    for name in names():
        if value == name:
            return name
    raise ConfigError(f"{origin}: must be one of {', '.join(names())} (got {got(value)})")


def parse_role(value: object, origin: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise ConfigError(f"{origin}: must be viewer or operator (got {got(value)})")


def parse_key_prefix(value: object, origin: str, system_name: System) -> str:
    """A source's key prefix, checked as a config file's is (detection checks found ones too).

    Raises:
        ConfigError: empty, with whitespace or a trailing ':' (unless the system takes any
            prefix: ``free_key_prefix``).
    """
    prefix = parse_str(value, origin)
    if system(system_name).free_key_prefix:
        return prefix
    if not prefix or prefix.endswith(":") or any(ch.isspace() for ch in prefix):
        raise ConfigError(
            f"{origin}: must be non-empty, without spaces or a trailing ':' (got {got(value)})"
        )
    return prefix


def parse_queues(value: object, origin: str) -> tuple[str, ...]:
    queues = parse_str_list(value, origin)
    if not queues:
        raise ConfigError(f"{origin}: must not be empty (leave it out to discover queues)")
    for index, queue in enumerate(queues):
        if queue in queues[:index]:
            raise ConfigError(f"{origin}[{index}]: duplicate queue {queue!r}")
    return queues


def parse_sha256(value: object, origin: str) -> str:
    digest = parse_str(value, origin).strip()
    if not _HEX64_RE.fullmatch(digest):
        # Never echo the value: it may be a plain token put in the wrong key.
        raise ConfigError(f"{origin}: must be 64 hex characters (a SHA-256 digest)")
    return digest.lower()


def parse_plain_token(value: object, origin: str) -> str:
    token = parse_str(value, origin)
    if not token or any(ch.isspace() for ch in token):
        raise ConfigError(f"{origin}: must be non-empty and contain no whitespace")
    return token


def parse_session_secret(value: object, origin: str) -> str:
    secret = parse_str(value, origin)
    if len(secret) < MIN_SESSION_SECRET_LEN:
        raise ConfigError(f"{origin}: must be at least {MIN_SESSION_SECRET_LEN} characters")
    return secret


def parse_header(value: object, origin: str) -> str:
    name = parse_str(value, origin)
    if not _HEADER_RE.fullmatch(name):
        raise ConfigError(f"{origin}: must be an HTTP header name (got {got(value)})")
    return name


def parse_networks(value: object, origin: str) -> tuple[str, ...]:
    entries = parse_str_list(value, origin)
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
