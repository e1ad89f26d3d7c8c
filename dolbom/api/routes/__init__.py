"""API routes, one module per resource, all under ``/api/v1``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from dolbom.api.schemas import Problem

PREFIX = "/api/v1"

_P: dict[str, Any] = {"model": Problem}
# Documented on every route (schemathesis checks that answers match the schema).
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {**_P, "description": "not signed in, or the token is invalid, expired or revoked"},
    403: {**_P, "description": "the role may not do this"},
    404: {**_P, "description": "does not exist, or not visible to you"},
    409: {**_P, "description": "conflicts with the current state"},
    422: {**_P, "description": "invalid input"},
    503: {**_P, "description": "a backing service is unavailable"},
}

# Path parameters, bounded so no input can reach the database out of its column's range.
ResidentId = Annotated[int, Path(ge=1, le=2_147_483_647)]
AlertId = Annotated[int, Path(ge=1, le=9_223_372_036_854_775_807)]
ObjectId = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Username = Annotated[str, Path(min_length=1, max_length=64)]
SettingKey = Annotated[str, Path(min_length=1, max_length=64)]
