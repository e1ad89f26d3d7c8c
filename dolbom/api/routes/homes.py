"""Homes (opaque ids, no addresses) and their away / hospital mode."""

from __future__ import annotations

from fastapi import APIRouter

from dolbom.api import access
from dolbom.api.deps import AuditDep, ScopeDep, SessionDep
from dolbom.api.errors import ApiError, Conflict, Forbidden, NotFound, Unprocessable
from dolbom.api.routes import ERRORS, PREFIX, ObjectId
from dolbom.api.schemas import HomeIn, HomeModeIn, HomeOut
from dolbom.registry import service
from dolbom.registry.models import Home, Site, UserRole

router = APIRouter(prefix=PREFIX, tags=["registry"], responses=ERRORS)


def _out(home: object) -> HomeOut:
    return HomeOut.model_validate(home)


@router.get("/homes", response_model=list[HomeOut])
def list_homes(session: SessionDep, scope: ScopeDep) -> list[HomeOut]:
    return [_out(h) for h in access.visible_homes(session, scope)]


def refuse_new_id(session: SessionDep, audit: AuditDep, action: str, refusal: tuple[int, str, str],
                  new_id: str, site_id: str) -> ApiError:
    """The error for a refused new id, after an audit entry of the attempt is committed."""
    status, answer, reason = refusal
    audit(action, None, f"id={new_id} site={site_id} refused: {reason}")
    session.commit()  # the refusal rolls the request back; the attempt stays on record
    return Conflict(answer) if status == 409 else Unprocessable(answer)


@router.post("/homes", response_model=HomeOut, status_code=201)
def add_home(body: HomeIn, session: SessionDep, scope: ScopeDep, audit: AuditDep) -> HomeOut:
    """A new home. A supervisor's home ids start with their site's id and a hyphen
    (``s1-…``): ids are global, and another site's ids are not theirs to learn."""
    if session.get(Site, body.site_id) is None or not (
            scope.everything or scope.site_id == body.site_id) or not scope.sees_registry:
        raise NotFound(f"site {body.site_id!r} does not exist")
    if not access.may_manage_site(scope, body.site_id):
        raise Forbidden("only an admin or the site's supervisor adds homes")
    refusal = access.new_id_refusal(session, scope, Home, body.id, body.site_id)
    if refusal is not None:
        raise refuse_new_id(session, audit, "home.add.refused", refusal, body.id, body.site_id)
    home = service.add_home(session, body.id, body.site_id, body.label)
    audit("home.add", None, f"home={home.id}")
    return _out(home)


@router.get("/homes/{home_id}", response_model=HomeOut)
def get_home(home_id: ObjectId, session: SessionDep, scope: ScopeDep, audit: AuditDep) -> HomeOut:
    home = access.require_home(session, scope, home_id)
    audit("home.read", [r.id for r in access.residents_of_home(session, home.id)],
          f"home={home.id}")
    return _out(home)


@router.put("/homes/{home_id}/mode", response_model=HomeOut)
def set_mode(home_id: ObjectId, body: HomeModeIn, session: SessionDep, scope: ScopeDep,
             audit: AuditDep) -> HomeOut:
    """Away / hospital suppresses the welfare rules for the home; say why.

    Admins, the site's supervisor and the home's care workers (who often learn first
    that a resident went to hospital) may set it."""
    home = access.require_home(session, scope, home_id)
    if not (access.may_manage_site(scope, home.site_id) or scope.role is UserRole.CARE_WORKER):
        raise Forbidden("your role may not change a home's mode")
    service.set_home_mode(session, home.id, body.mode, body.reason)
    audit("home.mode", [r.id for r in access.residents_of_home(session, home.id)],
          f"home={home.id} mode={body.mode}")
    return _out(home)
