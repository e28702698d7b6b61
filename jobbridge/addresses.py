"""IP addresses as settings and peers give them: parsed leniently, IPv4-mapped ones unwrapped."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether a listen host only accepts local connections.

    True for "localhost", any 127.x address and ::1 (also bracketed or IPv4-mapped).
    """
    name = host.strip().lower()
    if name in ("localhost", "localhost."):
        return True
    ip = parse_ip(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
    return ip is not None and ip.is_loopback


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``text`` names (an IPv4-mapped IPv6 address as its IPv4 one), or None."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
