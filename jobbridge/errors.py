"""Exceptions that cross layer boundaries."""

from __future__ import annotations


class JobbridgeError(Exception):
    """Base of jobbridge's own errors."""


class ConfigError(JobbridgeError):
    """A configuration value is missing or wrong; the message names the key."""


class SourceUnavailable(JobbridgeError):
    """A source's Redis failed us: not reachable (refused, timeout, loading), refusing the
    command (ACLs, read-only, OOM), not a Redis at all, or one of our scripts failing."""

    def __init__(self, source: str, detail: str, *, reconnectable: bool = False) -> None:
        super().__init__(f"source {source!r}: Redis unavailable ({detail})")
        self.source = source
        self.detail = detail
        #: the connection dropped (a Redis restart, an idle timeout): a read may be tried
        #: again on a fresh connection; an action may not, its outcome is unknown
        self.reconnectable = reconnectable


class UnknownSource(JobbridgeError):
    """No source of that name is configured."""


class SourceTimedOut(SourceUnavailable):
    """A source's Redis did not answer a read within the read timeout: slow or frozen (a
    long command, a stopped process). Its pages say so; sources on other servers go on."""

    #: how every detail of a timed-out read begins
    PREFIX = "timed out after "

    def __init__(self, source: str, timeout_s: float) -> None:
        super().__init__(source, f"{self.PREFIX}{timeout_s:g} s")
        self.timeout_s = timeout_s
