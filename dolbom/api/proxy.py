"""The API behind an HTTPS reverse proxy (DESIGN.md §2; docs/api.md).

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are honoured only when the connection comes
from a trusted proxy (``DOLBOM_API__TRUSTED_PROXIES``; none by default). From anyone
else they are ignored, so a client cannot choose the address the login limiter counts
or the audit log records, nor make a plain-HTTP request look like HTTPS.

The client is the rightmost address in ``X-Forwarded-For`` that is not itself a trusted
proxy: every hop to its right was appended by a proxy we trust, everything to its left
was written by the client and may be forged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings import this module; Starlette is needed only to serve
    from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or networks (``10.0.0.2``, ``10.0.0.0/24``, ``::1``).

    Raises ValueError naming the first bad entry."""
    out: list[Network] = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(out)


def _address(text: str) -> Address | None:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address | None, networks: Sequence[Network]) -> bool:
    return addr is not None and any(addr.version == n.version and addr in n for n in networks)


def forwarded_client(peer: str, forwarded_for: Iterable[str],
                     networks: Sequence[Network]) -> str:
    """The client's address for a connection from ``peer`` (a trusted proxy) carrying these
    ``X-Forwarded-For`` values: the rightmost hop that is not a trusted proxy. A hop that is
    not an address ends the walk at the last trusted one."""
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            break
        client = str(addr)
        if not _trusted(addr, networks):
            break
    return client


class TrustedProxies:
    """ASGI middleware: rewrite the scope's client and scheme from the forwarding headers,
    for connections from a trusted proxy only."""

    def __init__(self, app: ASGIApp, networks: Sequence[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.networks:
            client = scope.get("client")
            if client and _trusted(_address(str(client[0])), self.networks):
                scope = self._rewritten(scope, str(client[0]))
        await self.app(scope, receive, send)

    def _rewritten(self, scope: Scope, peer: str) -> Scope:
        forwarded_for: list[str] = []
        proto: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                # The last value: the one our proxy set (it should set, not append, it).
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
        scope = dict(scope)
        if forwarded_for:
            scope["client"] = (forwarded_client(peer, forwarded_for, self.networks), 0)
        if proto in ("http", "https"):
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if proto == "https" else "ws"
            else:
                scope["scheme"] = proto
        return scope
