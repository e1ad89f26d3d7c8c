"""API errors, classified by what the caller must do, and their HTTP answers.

Every answer is JSON ``{"detail": "..."}`` that says what was wrong, naming ids only
(never a resident's name: the text may reach a log). Registry and alert errors map as
the registry promised: NotFound → 404, AlreadyExists → 409, InvalidInput → 422; an
alert in the wrong state → 409.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dolbom.alerts.errors import AlertNotFound, InvalidTransition
from dolbom.registry import errors as reg


class ApiError(Exception):
    status = 400
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ApiError):
    """Does not exist, or the caller may not know it exists (never 403 for these)."""

    status = 404


class Forbidden(ApiError):
    """The caller can see the thing but their role may not do this to it."""

    status = 403


class Conflict(ApiError):
    status = 409


class Unprocessable(ApiError):
    status = 422


class Unauthorized(ApiError):
    """No valid credentials: sign in (again)."""

    status = 401
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - a constant


class TooManyAttempts(ApiError):
    status = 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_s)}


class Unavailable(ApiError):
    """A backing service (InfluxDB) is down: try again later."""

    status = 503


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _json(exc.status, exc.detail, exc.headers)

    async def registry_error(_: Request, exc: Exception) -> JSONResponse:
        status = (404 if isinstance(exc, reg.NotFound) else
                  409 if isinstance(exc, reg.AlreadyExists) else
                  503 if isinstance(exc, reg.BrokerNotRunning) else 422)
        return _json(status, str(exc))

    async def alert_not_found(_: Request, exc: Exception) -> JSONResponse:
        return _json(404, str(exc))

    async def invalid_transition(_: Request, exc: Exception) -> JSONResponse:
        return _json(409, str(exc))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(reg.RegistryError, registry_error)
    app.add_exception_handler(AlertNotFound, alert_not_found)
    app.add_exception_handler(InvalidTransition, invalid_transition)
