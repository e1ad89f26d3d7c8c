"""Sites (care centres, facilities): listing for everyone, creation by admins."""

from __future__ import annotations

from fastapi import APIRouter

from dolbom.api import access
from dolbom.api.deps import ScopeDep, SessionDep
from dolbom.api.errors import Forbidden
from dolbom.api.routes import ERRORS, PREFIX
from dolbom.api.schemas import SiteIn, SiteOut
from dolbom.registry import service

router = APIRouter(prefix=PREFIX, tags=["registry"], responses=ERRORS)


@router.get("/sites", response_model=list[SiteOut])
def list_sites(session: SessionDep, scope: ScopeDep) -> list[SiteOut]:
    return [SiteOut.model_validate(s) for s in access.visible_sites(session, scope)]


@router.post("/sites", response_model=SiteOut, status_code=201)
def add_site(body: SiteIn, session: SessionDep, scope: ScopeDep) -> SiteOut:
    if not scope.everything:
        raise Forbidden("only an admin adds sites")
    return SiteOut.model_validate(service.add_site(session, body.id, body.name,
                                                       body.cell))
