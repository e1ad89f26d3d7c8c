"""Gateways and their children (DESIGN.md §3): which devices a gateway forwards.

A child belongs to at most one gateway (the primary key is the child): attaching it to
another gateway moves it, and after ``broker.sync_broker`` the old gateway's ACL no
longer names it, so the old route is gone at the broker's reload. The gateway itself is
a device of kind ``gateway`` with its own credentials; a child keeps its own id and
topics (the gateway forwards them unchanged) and its own credentials (for the home's
local broker, ``dolbom gateway provision``).

Like ``service``, these functions flush and never commit: the caller owns the
transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dolbom.registry.errors import InvalidInput, NotFound
from dolbom.registry.models import ID_LEN, Base, Device, utcnow

GATEWAY_KIND = "gateway"


class GatewayChild(Base):
    """A device whose messages reach the central broker through a gateway."""

    __tablename__ = "gateway_children"

    device_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(
        String(ID_LEN), ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    since: Mapped[datetime] = mapped_column(default=utcnow)


def _device(session: Session, device_id: str) -> Device:
    d = session.get(Device, device_id)
    if d is None:
        raise NotFound(f"device {device_id!r} does not exist")
    return d


def attach(session: Session, gateway_id: str, device_id: str) -> GatewayChild:
    """Make ``device_id`` a child of ``gateway_id`` (moving it from another gateway).

    Both must be active, in the same site; a gateway cannot be a child.
    """
    gw, dev = _device(session, gateway_id), _device(session, device_id)
    if gw.kind != GATEWAY_KIND:
        raise InvalidInput(f"device {gateway_id!r} is a {gw.kind}, not a gateway")
    if dev.kind == GATEWAY_KIND:
        raise InvalidInput(f"device {device_id!r} is a gateway; a gateway is nobody's child")
    if gw.site_id != dev.site_id:
        raise InvalidInput(f"gateway {gateway_id!r} is in site {gw.site_id!r}, "
                           f"device {device_id!r} in {dev.site_id!r}")
    for d in (gw, dev):
        if d.revoked_at is not None:
            raise InvalidInput(f"device {d.id!r} is revoked")
    link = session.get(GatewayChild, device_id)
    if link is None:
        link = GatewayChild(device_id=device_id, gateway_id=gateway_id, since=utcnow())
        session.add(link)
    elif link.gateway_id != gateway_id:
        link.gateway_id, link.since = gateway_id, utcnow()
    session.flush()
    return link


def detach(session: Session, device_id: str) -> None:
    """The device talks to the central broker directly again (idempotent)."""
    session.execute(delete(GatewayChild).where(GatewayChild.device_id == device_id))
    session.flush()


def gateway_of(session: Session, device_id: str) -> str | None:
    link = session.get(GatewayChild, device_id)
    return None if link is None else link.gateway_id


def children_of(session: Session, gateway_id: str) -> list[Device]:
    """The gateway's active children, by id."""
    return list(session.scalars(
        select(Device).join(GatewayChild, GatewayChild.device_id == Device.id)
        .where(GatewayChild.gateway_id == gateway_id, Device.revoked_at.is_(None))
        .order_by(Device.id)))


def routes(session: Session) -> dict[str, list[Device]]:
    """Every gateway's active children (one query), for the broker's ACL."""
    out: dict[str, list[Device]] = {}
    rows = session.execute(
        select(GatewayChild.gateway_id, Device)
        .join(Device, GatewayChild.device_id == Device.id)
        .where(Device.revoked_at.is_(None)).order_by(GatewayChild.gateway_id, Device.id))
    for gw, dev in rows:
        out.setdefault(gw, []).append(dev)
    return out
