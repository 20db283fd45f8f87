"""Where webhooks may go: no private, loopback, link-local or otherwise non-public address
(server-side request forgery) unless the host is on BPO_WEBHOOK_ALLOWLIST.

URLs are checked when an endpoint is saved and again, after a fresh DNS lookup, before every
attempt, so a name that later resolves to an internal address is refused then. The attempt
then connects to the very address that was checked (`Target`), never resolving the name a
second time: a DNS answer that changes between the check and the connection (rebinding)
cannot steer the request inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

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


# IPv6 ranges Python's `is_global` does not flag but that reach private space: site-local
# (deprecated, still routed inside some networks), IPv4-compatible (`::a.b.c.d`) and NAT64
# (well-known and local-use prefixes), which translate to an IPv4 address chosen by the caller.
_NEVER_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(net) for net in ("fec0::/10", "::/96", "64:ff9b::/96", "64:ff9b:1::/48")
)


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _is_public(address.ipv4_mapped)
        if address.sixtofour is not None and not _is_public(address.sixtofour):
            return False
        if any(address in network for network in _NEVER_PUBLIC_V6):
            return False
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


@dataclass(frozen=True, slots=True)
class Target:
    """Where an attempt goes: the URL's host (for Host and TLS) and the checked address."""

    scheme: str
    host: str
    port: int
    address: IPAddress

    def url(self, original: str) -> str:
        """`original` with its host replaced by the checked address."""
        parts = urlsplit(original)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        default = 443 if self.scheme == "https" else 80
        netloc = literal if self.port == default else f"{literal}:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


async def check_url(url: str, allowlist: Sequence[str], *, unresolvable_ok: bool = False) -> None:
    """Raise RefusedAddress unless every address the host resolves to may be called.

    `unresolvable_ok`: when an endpoint is saved, a name that does not resolve yet is
    accepted (nothing proves it internal); every attempt checks again before sending."""
    try:
        await resolve_checked(url, allowlist)
    except Unresolvable:
        if not unresolvable_ok:
            raise


async def resolve_checked(url: str, allowlist: Sequence[str]) -> Target:
    """Resolve the URL's host once, check every address, and name the one to connect to."""
    scheme, host, port = parse_url(url)
    addresses = await _resolve(host, port)
    if not _host_allowed(host, addresses, allowlist):
        for address in addresses:
            if not _is_public(address):
                raise RefusedAddress(
                    f"{host} resolves to {address}, a private, loopback, link-local or reserved "
                    "address (allowed only through BPO_WEBHOOK_ALLOWLIST)"
                )
    return Target(scheme, host, port, addresses[0])


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve ({exc})") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not found:
        raise Unresolvable(f"{host} has no address")
    return found
