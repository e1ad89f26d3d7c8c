"""Residents (the personal data), their rule thresholds and their care workers.

Every read and change here is audit-logged, one entry per resident concerned.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query
from sqlalchemy import select

from dolbom.alerts.model import Thresholds
from dolbom.api import access
from dolbom.api.deps import AuditDep, ScopeDep, SessionDep
from dolbom.api.errors import Forbidden, NotFound, Unprocessable
from dolbom.api.routes import ERRORS, PREFIX, ResidentId, SettingKey, Username
from dolbom.api.schemas import ResidentDetail, ResidentIn, ResidentOut, SettingIn, UserOut
from dolbom.registry import service
from dolbom.registry.models import (
    Assignment,
    Home,
    Resident,
    ResidentSetting,
    User,
    UserRole,
)

router = APIRouter(prefix=PREFIX, tags=["residents"], responses=ERRORS)

# Per-resident settings are the alert rules' thresholds (``Thresholds``); ``wandering`` is
# a resident column of its own.
SETTING_TYPES: dict[str, type] = {f.name: type(getattr(Thresholds(), f.name))
                                  for f in dataclasses.fields(Thresholds)
                                  if f.name != "wandering"}
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def check_setting(key: SettingKey, value: float | str) -> float | str:
    kind = SETTING_TYPES.get(key)
    if kind is None:
        raise NotFound(f"setting {key!r} does not exist; one of: {', '.join(SETTING_TYPES)}")
    if kind is float:
        if isinstance(value, str | bool) or not math.isfinite(value) or not 0 <= value <= 1e6:
            raise Unprocessable(f"{key} is a number from 0 to 1000000")
        return float(value)
    if not isinstance(value, str):
        raise Unprocessable(f"{key} is text")
    if key == "timezone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise Unprocessable(f"{value!r} is not a time zone (e.g. Asia/Seoul)") from None
    elif not _HHMM.match(value):
        raise Unprocessable(f"{key} is a time of day, HH:MM")
    return value


def _site_of(session: SessionDep, resident: Resident) -> str:
    home = session.get(Home, resident.home_id)
    assert home is not None  # a foreign key
    return home.site_id


def _manage(session: SessionDep, scope: access.Scope, resident: Resident) -> None:
    if not access.may_manage_site(scope, _site_of(session, resident)):
        raise Forbidden("only an admin or the site's supervisor may change this")


@router.get("/residents", response_model=list[ResidentOut])
def list_residents(session: SessionDep, scope: ScopeDep, audit: AuditDep,
                   home_id: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100,
                   offset: Annotated[int, Query(ge=0)] = 0) -> list[ResidentOut]:
    residents = access.visible_residents(session, scope)
    if home_id is not None:
        residents = [r for r in residents if r.home_id == home_id]
    page = residents[offset:offset + limit]
    if page:
        audit("resident.list", [r.id for r in page])
    return [ResidentOut.model_validate(r) for r in page]


@router.post("/residents", response_model=ResidentOut, status_code=201)
def add_resident(body: ResidentIn, session: SessionDep, scope: ScopeDep,
                 audit: AuditDep) -> ResidentOut:
    home = access.require_home(session, scope, body.home_id)
    if not access.may_manage_site(scope, home.site_id):
        raise Forbidden("only an admin or the site's supervisor adds residents")
    r = service.add_resident(session, home.id, body.name, phone=body.phone,
                             address=body.address, birth_year=body.birth_year,
                             wandering=body.wandering)
    audit("resident.create", r.id)
    return ResidentOut.model_validate(r)


def _settings(session: SessionDep, resident_id: int) -> dict[str, Any]:
    return {s.key: s.value for s in session.scalars(
        select(ResidentSetting).where(ResidentSetting.resident_id == resident_id)
        .order_by(ResidentSetting.key))}


@router.get("/residents/{resident_id}", response_model=ResidentDetail)
def get_resident(resident_id: ResidentId, session: SessionDep, scope: ScopeDep,
                 audit: AuditDep) -> ResidentDetail:
    r = access.require_resident(session, scope, resident_id)
    workers = list(session.scalars(
        select(User.username).join(Assignment, Assignment.user_id == User.id)
        .where(Assignment.resident_id == r.id).order_by(User.username)))
    audit("resident.read", r.id)
    return ResidentDetail(**ResidentOut.model_validate(r).model_dump(),
                          site_id=_site_of(session, r), settings=_settings(session, r.id),
                          care_workers=workers)


@router.get("/residents/{resident_id}/settings", response_model=dict[str, Any])
def get_settings(resident_id: ResidentId, session: SessionDep, scope: ScopeDep,
                 audit: AuditDep) -> dict[str, Any]:
    """The resident's threshold overrides (the rest are the defaults)."""
    r = access.require_resident(session, scope, resident_id)
    audit("resident.settings.read", r.id)
    return _settings(session, r.id)


@router.put("/residents/{resident_id}/settings/{key}", response_model=dict[str, Any])
def put_setting(resident_id: ResidentId, key: SettingKey, body: SettingIn, session: SessionDep,
                scope: ScopeDep, audit: AuditDep) -> dict[str, Any]:
    r = access.require_resident(session, scope, resident_id)
    _manage(session, scope, r)
    value = check_setting(key, body.value)
    service.set_resident_setting(session, r.id, key, value)
    audit("resident.settings.set", r.id, f"{key}={value}")
    return _settings(session, r.id)


@router.delete("/residents/{resident_id}/settings/{key}", response_model=dict[str, Any])
def delete_setting(resident_id: ResidentId, key: SettingKey, session: SessionDep, scope: ScopeDep,
                   audit: AuditDep) -> dict[str, Any]:
    """Back to the default for this threshold."""
    r = access.require_resident(session, scope, resident_id)
    _manage(session, scope, r)
    row = session.get(ResidentSetting, (r.id, key))
    if row is None:
        raise NotFound(f"resident {r.id} has no setting {key!r}")
    session.delete(row)
    session.flush()
    audit("resident.settings.delete", r.id, key)
    return _settings(session, r.id)


@router.get("/residents/{resident_id}/assignments", response_model=list[UserOut])
def get_assignments(resident_id: ResidentId, session: SessionDep, scope: ScopeDep,
                    audit: AuditDep) -> list[UserOut]:
    """The care workers who look after the resident."""
    r = access.require_resident(session, scope, resident_id)
    audit("resident.assignments.read", r.id)
    return _assigned(session, r.id)


def _worker(session: SessionDep, username: Username, site_id: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None or user.role is not UserRole.CARE_WORKER or \
            user.site_id not in (None, site_id):
        raise NotFound(f"care worker {username!r} does not exist in site {site_id!r}")
    return user


@router.put("/residents/{resident_id}/assignments/{username}", response_model=list[UserOut])
def add_assignment(resident_id: ResidentId, username: Username, session: SessionDep,
                   scope: ScopeDep, audit: AuditDep) -> list[UserOut]:
    r = access.require_resident(session, scope, resident_id)
    _manage(session, scope, r)
    _worker(session, username, _site_of(session, r))
    service.assign(session, username, r.id)
    audit("resident.assignments.add", r.id, f"care_worker={username}")
    return _assigned(session, r.id)


@router.delete("/residents/{resident_id}/assignments/{username}",
               response_model=list[UserOut])
def remove_assignment(resident_id: ResidentId, username: Username, session: SessionDep,
                      scope: ScopeDep, audit: AuditDep) -> list[UserOut]:
    """Takes effect at the worker's next request (scopes are computed per request)."""
    r = access.require_resident(session, scope, resident_id)
    _manage(session, scope, r)
    user = _worker(session, username, _site_of(session, r))
    if session.get(Assignment, (user.id, r.id)) is None:
        raise NotFound(f"{username!r} is not assigned to resident {r.id}")
    service.unassign(session, username, r.id)
    audit("resident.assignments.remove", r.id, f"care_worker={username}")
    return _assigned(session, r.id)


def _assigned(session: SessionDep, resident_id: int) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in session.scalars(
        select(User).join(Assignment, Assignment.user_id == User.id)
        .where(Assignment.resident_id == resident_id).order_by(User.username))]
