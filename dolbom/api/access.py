"""Who may see what (DESIGN.md §6), decided from the database at every request.

- ``admin``: everything.
- ``supervisor``: their site (``users.site_id``); a supervisor without a site sees nothing.
- ``care_worker``: only the residents assigned to them (``assignments``), those residents'
  homes and devices, and the alerts of those homes.
- ``responder``: life-safety alerts (priority high, class life-safety) of their site (all
  sites if they have none), with the name, address and phone needed to respond; no
  resident, home or device routes at all.

Per-resident access holds inside a shared home too: a care worker assigned to one
resident of a home sees that home's alerts (the alert is about the home), but only their
own residents' names and contact details on it (``sees_person``, ``people_of_home``), never
a housemate's. Responders and supervisors see everyone at the alert's home: they respond.

Anything outside a person's scope does not exist for them: ``NotFound`` (404), never 403,
so ids cannot be probed. The scope is computed afresh for every request, so removing an
assignment takes effect at the next request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.orm import Session

from dolbom.alerts.model import AlertClass, Priority
from dolbom.api.errors import NotFound
from dolbom.registry.models import (
    Alert,
    Assignment,
    Device,
    Home,
    Resident,
    Site,
    User,
    UserRole,
)

__all__ = [
    "NotFound",
    "Scope",
    "require_alert",
    "require_device",
    "require_home",
    "require_resident",
    "scope_for",
    "visible_alerts",
    "visible_residents",
]


@dataclass(frozen=True, slots=True)
class Scope:
    """What one person may see. ``None`` in a set means "not limited by this"."""

    user_id: int
    role: UserRole
    resident_ids: frozenset[int] | None  # None: every resident (of ``site_id`` if set)
    site_id: str | None  # None: every site
    life_safety_only: bool  # responders
    home_ids: frozenset[str] | None = None  # care workers: homes of their residents
    everything: bool = False  # admins

    @property
    def sees_registry(self) -> bool:
        """Residents, homes and devices: not for responders."""
        return not self.life_safety_only

    def allows_alert(self, site_id: str, home_id: str | None, klass: str, priority: str) -> bool:
        if self.life_safety_only:
            return (klass == AlertClass.LIFE_SAFETY.value and priority == Priority.HIGH.value
                    and (self.site_id is None or site_id == self.site_id))
        if self.everything:
            return True
        if self.home_ids is not None:
            return home_id is not None and home_id in self.home_ids
        return self.site_id is not None and site_id == self.site_id

    def allows_home(self, home: Home) -> bool:
        if not self.sees_registry:
            return False
        if self.everything:
            return True
        if self.home_ids is not None:
            return home.id in self.home_ids
        return self.site_id is not None and home.site_id == self.site_id

    def allows_resident(self, resident: Resident, home_site: str) -> bool:
        if not self.sees_registry:
            return False
        if self.everything:
            return True
        if self.resident_ids is not None:
            return resident.id in self.resident_ids
        return self.site_id is not None and home_site == self.site_id

    def allows_device(self, device: Device) -> bool:
        if not self.sees_registry:
            return False
        if self.everything:
            return True
        if self.home_ids is not None:
            return device.home_id is not None and device.home_id in self.home_ids
        return self.site_id is not None and device.site_id == self.site_id

    def sees_person(self, resident_id: int) -> bool:
        """Whether this person may see a resident's name and contact details on an alert
        of a home they may see: responders, supervisors and admins everyone at the home;
        care workers only the residents assigned to them."""
        if self.life_safety_only or self.resident_ids is None:
            return True
        return resident_id in self.resident_ids

    def allows_site(self, site_id: str) -> bool:
        """Site-wide data (reports, listings): admins, and the site's own supervisor."""
        return self.everything or (self.role is UserRole.SUPERVISOR and self.site_id == site_id)

    # SQL forms of the same rules, for listings.

    def alert_filter(self) -> ColumnElement[bool]:
        if self.life_safety_only:
            cond = (Alert.klass == AlertClass.LIFE_SAFETY.value) & (
                Alert.priority == Priority.HIGH.value)
            return cond if self.site_id is None else cond & (Alert.site_id == self.site_id)
        if self.everything:
            return true()
        if self.home_ids is not None:
            return Alert.home_id.in_(sorted(self.home_ids)) if self.home_ids else false()
        return Alert.site_id == self.site_id if self.site_id is not None else false()

    def resident_filter(self) -> ColumnElement[bool]:
        """Over ``Resident`` joined with ``Home``."""
        if not self.sees_registry:
            return false()
        if self.everything:
            return true()
        if self.resident_ids is not None:
            return Resident.id.in_(sorted(self.resident_ids)) if self.resident_ids else false()
        return Home.site_id == self.site_id if self.site_id is not None else false()

    def home_filter(self) -> ColumnElement[bool]:
        if not self.sees_registry:
            return false()
        if self.everything:
            return true()
        if self.home_ids is not None:
            return Home.id.in_(sorted(self.home_ids)) if self.home_ids else false()
        return Home.site_id == self.site_id if self.site_id is not None else false()

    def device_filter(self) -> ColumnElement[bool]:
        if not self.sees_registry:
            return false()
        if self.everything:
            return true()
        if self.home_ids is not None:
            return Device.home_id.in_(sorted(self.home_ids)) if self.home_ids else false()
        return Device.site_id == self.site_id if self.site_id is not None else false()


def scope_for(session: Session, user: User) -> Scope:
    role = UserRole(user.role)
    if role is UserRole.ADMIN:
        return Scope(user.id, role, None, None, False, None, everything=True)
    if role is UserRole.SUPERVISOR:
        if user.site_id is None:  # misconfigured: sees nothing rather than everything
            return Scope(user.id, role, frozenset(), None, False, frozenset())
        return Scope(user.id, role, None, user.site_id, False)
    if role is UserRole.RESPONDER:
        return Scope(user.id, role, frozenset(), user.site_id, True, frozenset())
    rows = session.execute(
        select(Resident.id, Resident.home_id)
        .join(Assignment, Assignment.resident_id == Resident.id)
        .where(Assignment.user_id == user.id)
    ).all()
    return Scope(user.id, role, frozenset(r for r, _ in rows), None, False,
                 frozenset(h for _, h in rows))


def _scope(session: Session, user: User | Scope) -> Scope:
    return user if isinstance(user, Scope) else scope_for(session, user)


# Ids outside their column's range cannot exist: the database is never asked (SQLite and
# PostgreSQL raise on them), whichever route or page passed them.
MAX_INT4 = 2_147_483_647
MAX_INT8 = 9_223_372_036_854_775_807


def require_resident(session: Session, user: User | Scope, resident_id: int) -> Resident:
    scope = _scope(session, user)
    if not 1 <= resident_id <= MAX_INT4:
        raise NotFound(f"resident {resident_id} does not exist")
    resident = session.get(Resident, resident_id)
    if resident is not None:
        home = session.get(Home, resident.home_id)
        if home is not None and scope.allows_resident(resident, home.site_id):
            return resident
    raise NotFound(f"resident {resident_id} does not exist")


def require_home(session: Session, user: User | Scope, home_id: str) -> Home:
    scope = _scope(session, user)
    home = session.get(Home, home_id)
    if home is None or not scope.allows_home(home):
        raise NotFound(f"home {home_id!r} does not exist")
    return home


def require_device(session: Session, user: User | Scope, device_id: str) -> Device:
    scope = _scope(session, user)
    device = session.get(Device, device_id)
    if device is None or not scope.allows_device(device):
        raise NotFound(f"device {device_id!r} does not exist")
    return device


def require_alert(session: Session, user: User | Scope, alert_id: int) -> Alert:
    scope = _scope(session, user)
    if not 1 <= alert_id <= MAX_INT8:
        raise NotFound(f"alert {alert_id} does not exist")
    alert = session.get(Alert, alert_id)
    if alert is None or not scope.allows_alert(alert.site_id, alert.home_id, alert.klass,
                                               alert.priority):
        raise NotFound(f"alert {alert_id} does not exist")
    return alert


def visible_alerts(session: Session, user: User | Scope, *,
                   status: str | Sequence[str] | None = None, priority: str | None = None,
                   site: str | None = None, worker: str | None = None,
                   limit: int = 100) -> list[Alert]:
    """Alerts the person may see, newest first; ``worker`` is the assignee's username."""
    scope = _scope(session, user)
    stmt: Select[Alert] = select(Alert).where(scope.alert_filter())
    if status:
        stmt = stmt.where(Alert.status.in_([status] if isinstance(status, str) else
                                           list(status)))
    if priority:
        stmt = stmt.where(Alert.priority == priority)
    if site:
        stmt = stmt.where(Alert.site_id == site)
    if worker:
        wid = session.scalar(select(User.id).where(User.username == worker))
        if wid is None:
            return []
        stmt = stmt.where(Alert.assignee_id == wid)
    return list(session.scalars(stmt.order_by(Alert.raised_at.desc(), Alert.id.desc())
                                .limit(max(1, min(limit, 1000)))))


def visible_residents(session: Session, user: User | Scope) -> list[Resident]:
    scope = _scope(session, user)
    return list(session.scalars(
        select(Resident).join(Home, Home.id == Resident.home_id)
        .where(scope.resident_filter()).order_by(Resident.id)))


def visible_homes(session: Session, user: User | Scope) -> list[Home]:
    scope = _scope(session, user)
    return list(session.scalars(select(Home).where(scope.home_filter()).order_by(Home.id)))


def visible_devices(session: Session, user: User | Scope, *,
                    include_revoked: bool = False) -> list[Device]:
    scope = _scope(session, user)
    stmt = select(Device).where(scope.device_filter())
    if not include_revoked:
        stmt = stmt.where(Device.revoked_at.is_(None))
    return list(session.scalars(stmt.order_by(Device.site_id, Device.id)))


def visible_sites(session: Session, user: User | Scope) -> list[Site]:
    scope = _scope(session, user)
    stmt = select(Site)
    if not scope.everything:
        if scope.home_ids is not None:
            stmt = stmt.join(Home, Home.site_id == Site.id).where(
                Home.id.in_(sorted(scope.home_ids))).distinct()
        elif scope.site_id is not None:
            stmt = stmt.where(Site.id == scope.site_id)
        else:
            stmt = stmt.where(false())
    return list(session.scalars(stmt.order_by(Site.id)))


def residents_of_home(session: Session, home_id: str | None) -> list[Resident]:
    if home_id is None:
        return []
    return list(session.scalars(select(Resident).where(Resident.home_id == home_id)
                                .order_by(Resident.id)))


def people_of_home(session: Session, scope: Scope, home_id: str | None) -> list[Resident]:
    """The residents of a home whom ``scope`` may see on that home's alerts."""
    return [r for r in residents_of_home(session, home_id) if scope.sees_person(r.id)]


def site_id_prefix(site_id: str) -> str:
    """The namespace of the ids a site's supervisor gives new homes and devices."""
    return f"{site_id}-"


def new_id_refusal(session: Session, scope: Scope, kind: type[Home] | type[Device],
                   new_id: str, site_id: str) -> tuple[int, str, str] | None:
    """Why ``new_id`` cannot be a new home or device of ``site_id`` for this person, as
    (HTTP status, answer, audit reason), or None if it can.

    Home and device ids are global (MQTT topics and usernames), so "already exists" would
    tell a supervisor which ids other sites use. A supervisor's new ids therefore live in
    their site's namespace (``<site>-…``): an id outside it is refused whether or not it
    exists, and a taken id inside it gets the same answer whoever holds it. Admins see
    every site, so they only learn what they may know.
    """
    what = "home" if kind is Home else "device"
    existing: Home | Device | None = (session.get(Home, new_id) if kind is Home
                                      else session.get(Device, new_id))
    foreign = existing is not None and existing.site_id != site_id
    if not scope.everything and not new_id.startswith(site_id_prefix(site_id)):
        return (422, f"a new {what} id of site {site_id!r} starts with "
                f"{site_id_prefix(site_id)!r}", "outside the site's namespace"
                + (" (a foreign id)" if foreign else ""))
    if existing is not None:
        return (409, f"{what} id {new_id!r} is already in use",
                "in use by another site" if foreign else "in use")
    return None


def may_manage_site(scope: Scope, site_id: str) -> bool:
    """Registry changes in a site: admins, and that site's supervisor."""
    return scope.allows_site(site_id)


def may_see_alert(session: Session, user: User, alert: Alert) -> bool:
    """Whether ``user`` could see ``alert`` (e.g. before assigning it to them)."""
    return scope_for(session, user).allows_alert(alert.site_id, alert.home_id, alert.klass,
                                                 alert.priority)
