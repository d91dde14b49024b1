"""Server-side request forgery check (pure, given the resolved addresses): a user's webhook may not point at our
own network (loopback, private, link-local, multicast, reserved, the cloud metadata address) unless
`PULSE_WEBHOOK_ALLOW_PRIVATE` is on (`pulse demo` and the tests, whose receivers are local)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    pass


def check_url_shape(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; UnsafeUrl when it isn't one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("has an invalid port") from None
    return parts.hostname, port


def refused_address(addresses: list[str]) -> str | None:
    """The first address a webhook may not reach, if any (every address the name resolves to is checked, so a
    name with one public and one private address is refused)."""
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            return str(ip)
    return None


async def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that isn't http(s), or resolves to an address of our own network (unless allowed)."""
    host, port = check_url_shape(url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise UnsafeUrl(f"the host {host!r} does not resolve") from None
    if bad := refused_address([str(info[4][0]) for info in infos]):
        raise UnsafeUrl(f"resolves to {bad}, a loopback or private address")
