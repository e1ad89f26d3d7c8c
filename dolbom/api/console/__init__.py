"""The care-worker console: server-rendered pages, mounted by ``dolbom.api.app``.

Pages under ``/console`` (``routes.py``), their assets under ``/static`` (local files
only: the console works on a closed network), Korean and English (``i18n.py``).
See docs/console.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from dolbom.api.console.pages import STATIC
from dolbom.api.console.routes import root, router

__all__ = ["install", "router"]


def install(app: FastAPI) -> None:
    """Mount the console's pages and static assets on the API app."""
    app.include_router(router)
    # "/" leads to the console, unless the API has a page of its own there.
    if not any(isinstance(r, Route) and r.path == "/" for r in app.routes):
        app.include_router(root)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
