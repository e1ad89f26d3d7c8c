"""People: who can be assigned (admins: everyone; supervisors: their site), deactivation."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import or_, select

from dolbom.api import auth
from dolbom.api.deps import ScopeDep, SessionDep, UserDep
from dolbom.api.errors import Forbidden, NotFound, Unprocessable
from dolbom.api.routes import ERRORS, PREFIX, Username
from dolbom.api.schemas import UserOut
from dolbom.registry.models import User, UserRole

router = APIRouter(prefix=PREFIX, tags=["users"], responses=ERRORS)


@router.get("/users", response_model=list[UserOut])
def list_users(session: SessionDep, scope: ScopeDep) -> list[UserOut]:
    stmt = select(User).order_by(User.username)
    if scope.everything:
        pass
    elif scope.role is UserRole.SUPERVISOR and scope.site_id is not None:
        stmt = stmt.where(or_(User.site_id == scope.site_id,
                              (User.site_id.is_(None)) & (User.role == UserRole.CARE_WORKER)))
    else:
        raise Forbidden("only admins and supervisors list people")
    return [UserOut.model_validate(u) for u in session.scalars(stmt)]


@router.post("/users/{username}/deactivate", response_model=UserOut)
def deactivate(username: Username, session: SessionDep, scope: ScopeDep, me: UserDep) -> UserOut:
    """Refuse the person from their next request on (admins only)."""
    if not scope.everything:
        raise Forbidden("only an admin deactivates people")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    if user.id == me.id:
        raise Unprocessable("you cannot deactivate yourself")
    auth.deactivate(session, user)
    return UserOut.model_validate(user)
