"""Checking the demo's ports before anything starts, and saying so in one line when one is taken."""

from __future__ import annotations

import errno
import socket

#: how far above a taken port to look for a free one to suggest
_SUGGEST_RANGE = 20


def is_free(host: str, port: int) -> bool:
    """Whether a listening socket could bind ``host:port`` now.

    ``SO_REUSEADDR`` as aiohttp and redis-server set it: a port left in TIME_WAIT is free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def suggest(host: str, taken: int) -> int | None:
    """A free port just above ``taken`` (never 6379), or None."""
    for port in range(taken + 1, min(taken + _SUGGEST_RANGE, 65535) + 1):
        if port != 6379 and is_free(host, port):
            return port
    return None


def taken_dashboard_port(host: str, port: int) -> str:
    """The line that says the dashboard's port is taken and how to pick another."""
    other = suggest(host, port)
    example = str(other) if other else "N"
    return (
        f"jobbridge demo: port {port} on {host} is already in use; "
        f"start the dashboard on another with --port {example} (make demo PORT={example})"
    )


def taken_redis_port(port: int) -> str:
    """The line that says the demo Redis's port is taken."""
    return (
        f"jobbridge demo: port {port} on 127.0.0.1 is already in use; give the demo's Redis "
        "another with --redis-port, or leave --redis-port out to use a free one"
    )


def is_address_in_use(exc: OSError) -> bool:
    """Whether a bind failed because the address is taken (aiohttp keeps the errno)."""
    return exc.errno == errno.EADDRINUSE
