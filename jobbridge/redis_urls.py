"""Redis URLs: checked, taken apart (kombu's sentinel:// form) and redacted for messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from jobbridge.config_values import got, parse_str
from jobbridge.errors import ConfigError

URL_SCHEMES = ("redis://", "rediss://", "unix://")
#: kombu's form for Redis behind Sentinel: "sentinel://[:password@]host:port[;sentinel://…][/db]"
SENTINEL_SCHEME = "sentinel://"
DEFAULT_SENTINEL_PORT = 26379


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


def parse_redis_url(value: object, origin: str) -> str:
    """A Redis URL (redis://, rediss://, unix://, or a valid sentinel:// one), as a config value.

    Raises:
        ConfigError: naming ``origin``, with the URL's credentials hidden.
    """
    url = parse_str(value, origin).strip()
    if is_sentinel_url(url):
        parse_sentinel_url(url, origin)
    elif not url.startswith(URL_SCHEMES):
        shown = got(redact_url(url))
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
    shown = got(redact_url(url))
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
            raise ConfigError(f"{origin}: the database must be a number (got {got(path)})")
        values.append(("db", str(int(path))))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "master":
            raise ConfigError(
                f"{origin}: unknown option {key!r} (a sentinel:// URL takes only ?master=<name>)"
            )
        values.append(("master", parse_master_name(value, f"{origin} (?master=)")))
    return values


def parse_master_name(value: object, origin: str) -> str:
    """The name sentinels know a master by (``sentinel_master``, ``?master=``)."""
    name = parse_str(value, origin)
    if not name or not name.isprintable() or any(ch.isspace() for ch in name):
        raise ConfigError(
            f"{origin}: must be the master's name as the sentinels know it, without spaces"
            f" (got {got(value)})"
        )
    return name
