"""The OpenAPI UI at ``/docs``, served entirely by the app: care centres often run on
closed networks, so nothing comes from a CDN.

Swagger UI's files come from the ``fastapi-offline`` package (which bundles them) and are
served under ``/docs/assets``; the page loads them and a small start script of ours, with
no inline script, so the CSP of ``dolbom.api.headers`` holds. The online validator badge
is off (it would call a server on the internet).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" href="{assets}/favicon.png">
</head>
<body>
<main id="swagger-ui"></main>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""

START = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "%s",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


def install(app: FastAPI) -> None:
    """``/docs`` (the page), ``/docs/start.js`` and ``/docs/assets/*`` (Swagger UI)."""
    if not (ASSETS / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"Swagger UI's files are missing from {ASSETS}")
    page = PAGE.format(title=app.title, assets=ASSETS_URL)
    start = START % (app.openapi_url or "/openapi.json")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/docs/start.js", include_in_schema=False)
    def docs_start() -> Response:
        return Response(start, media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
