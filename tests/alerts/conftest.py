"""A registry with a home, its resident and the people who look after them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import Assignment, Contact, User, UserRole


@dataclass
class People:
    responder: User
    worker: User
    other_worker: User
    supervisor: User
    admin: User


def add_user(s: Session, username: str, role: UserRole, site: str | None,
             channel: str = "webhook", address: str = "http://127.0.0.1:9/x") -> User:
    u = User(username=username, display_name=username, role=role, site_id=site, active=True)
    s.add(u)
    s.flush()
    s.add(Contact(user_id=u.id, channel=channel, address=address, position=0, active=True))
    s.flush()
    return u


def make_care_home(s: Session) -> People:
    registry.add_site(s, "s1", "Site 1")
    registry.add_home(s, "h1", "s1")
    registry.add_home(s, "h2", "s1")
    r1 = registry.add_resident(s, "h1", "김영희")
    registry.add_resident(s, "h2", "박철수")
    people = People(
        responder=add_user(s, "resp", UserRole.RESPONDER, "s1"),
        worker=add_user(s, "worker", UserRole.CARE_WORKER, "s1"),
        other_worker=add_user(s, "worker2", UserRole.CARE_WORKER, "s1"),
        supervisor=add_user(s, "super", UserRole.SUPERVISOR, "s1"),
        admin=add_user(s, "admin", UserRole.ADMIN, None),
    )
    s.add(Assignment(user_id=people.worker.id, resident_id=r1.id))
    s.flush()
    return people


@pytest.fixture()
def care_db(db_url: str) -> Iterator[tuple[Session, People]]:
    migrate(db_url)
    factory = session_factory(db_url)
    with factory.begin() as s:
        people = make_care_home(s)
    with factory() as s:
        yield s, people
