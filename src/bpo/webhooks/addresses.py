"""Where webhooks may go: no private, loopback, link-local or otherwise non-public address
(server-side request forgery) unless the host is on BPO_WEBHOOK_ALLOWLIST.

URLs are checked when an endpoint is saved and again, after a fresh DNS lookup, before every
attempt, so a name that later resolves to an internal address is refused then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(ValueError):
    """The URL may not be used for webhooks; the message says why."""


def _host_allowed(host: str, addresses: Sequence[IPAddress], allowlist: Sequence[str]) -> bool:
    for entry in allowlist:
        if entry == host:
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if addresses and all(address in network for address in addresses):
            return True
    return False


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or RefusedAddress."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedAddress(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise RefusedAddress("must be an http or https URL")
    if not parts.hostname:
        raise RefusedAddress("has no host")
    if parts.username is not None or parts.password is not None:
        raise RefusedAddress("must not carry credentials")
    if parts.fragment:
        raise RefusedAddress("must not have a fragment")
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


class Unresolvable(RefusedAddress):
    """The host name does not resolve (now)."""


async def check_url(url: str, allowlist: Sequence[str], *, unresolvable_ok: bool = False) -> None:
    """Raise RefusedAddress unless every address the host resolves to may be called.

    `unresolvable_ok`: when an endpoint is saved, a name that does not resolve yet is
    accepted (nothing proves it internal); every attempt checks again before sending."""
    _, host, port = parse_url(url)
    try:
        addresses = await _resolve(host, port)
    except Unresolvable:
        if unresolvable_ok:
            return
        raise
    if _host_allowed(host, addresses, allowlist):
        return
    for address in addresses:
        if not _is_public(address):
            raise RefusedAddress(
                f"{host} resolves to {address}, a private, loopback, link-local or reserved "
                "address (allowed only through BPO_WEBHOOK_ALLOWLIST)"
            )


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve ({exc})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
