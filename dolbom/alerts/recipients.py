"""Who is told of an alert (DESIGN.md §5 "Goes to"), and their notices queued in the
outbox: one row per recipient on their first contact, the rest being fallbacks. Plain
functions over a SQLAlchemy session; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dolbom.alerts.model import Priority
from dolbom.registry.models import Alert, Assignment, Contact, Outbox, Resident, User, UserRole


def recipients(session: Session, site: str, home: str | None, priority: Priority,
               tier: int) -> list[User]:
    """Who is told (DESIGN.md §5 "Goes to"), by tier of escalation.

    tier 1: high → responders of the site + the home's assigned care workers
            (no home: a life-safety event from a device not assigned to one, so
            nobody is assigned → the site's supervisors, responders and operators);
            medium → the assigned care workers (the site's supervisors if none);
            low → operators (admins).
    tier 2: the site's supervisors.  tier 3 and up: admins.
    """
    active = User.active.is_(True)
    for_site = or_(User.site_id == site, User.site_id.is_(None))

    def by_role(role: UserRole, site_only: bool = True) -> list[User]:
        stmt = select(User).where(active, User.role == role)
        if site_only:
            stmt = stmt.where(User.site_id == site if role == UserRole.SUPERVISOR else for_site)
        return list(session.scalars(stmt.order_by(User.id)))

    def assigned() -> list[User]:
        if home is None:
            return []
        return list(session.scalars(
            select(User).join(Assignment, Assignment.user_id == User.id)
            .join(Resident, Resident.id == Assignment.resident_id)
            .where(Resident.home_id == home, active, User.role == UserRole.CARE_WORKER)
            .distinct().order_by(User.id)))

    if tier >= 3:
        people = by_role(UserRole.ADMIN)
    elif tier == 2:
        people = by_role(UserRole.SUPERVISOR) or by_role(UserRole.ADMIN)
    elif priority == Priority.HIGH and home is None:
        people = (by_role(UserRole.SUPERVISOR) + by_role(UserRole.RESPONDER)
                  + by_role(UserRole.ADMIN))
    elif priority == Priority.HIGH:
        people = by_role(UserRole.RESPONDER) + assigned()
    elif priority == Priority.MEDIUM:
        people = assigned() or by_role(UserRole.SUPERVISOR)
    else:
        people = by_role(UserRole.ADMIN)
    unique: dict[int, User] = {}
    for u in people:
        unique.setdefault(u.id, u)  # a responder who is also assigned is told once
    return list(unique.values())


def contacts_of(session: Session, user_id: int) -> list[Contact]:
    return list(session.scalars(
        select(Contact).where(Contact.user_id == user_id, Contact.active.is_(True))
        .order_by(Contact.position, Contact.id)))


def queue_notices(session: Session, alert: Alert, notice: str, at: datetime,
                  step: int = 0) -> int:
    """Queue one outbox row per recipient, on their first channel (the rest are fallbacks).

    The dedup key makes this idempotent: queueing the same notice twice adds nothing.
    """
    n = 0
    for user in recipients(session, alert.site_id, alert.home_id, Priority(alert.priority),
                           alert.tier):
        contacts = contacts_of(session, user.id)
        if not contacts:
            continue
        c = contacts[0]
        n += add_notice(session, alert.id, user.id, c, notice, step, alert.tier, at,
                        f"{alert.id}/{notice}{step}/{user.id}/{c.channel}")
    session.flush()
    return n


def add_notice(session: Session, alert_id: int, user_id: int, contact: Contact, notice: str,
               step: int, tier: int, at: datetime, dedup_key: str) -> int:
    """Queue one notice on one contact, unless the same notice is already queued (0)."""
    if session.scalar(select(Outbox.id).where(Outbox.dedup_key == dedup_key)) is not None:
        return 0
    session.add(Outbox(alert_id=alert_id, user_id=user_id, contact_id=contact.id,
                       channel=contact.channel, address=contact.address, notice=notice,
                       step=step, tier=tier, dedup_key=dedup_key, status="pending",
                       attempts=0, next_attempt_at=at, created_at=at))
    return 1
