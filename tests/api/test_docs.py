"""/docs works on a closed network: the page and everything it loads come from the app
itself (Swagger UI's files from a package), with no inline script."""

from __future__ import annotations

import re

from tests.api.conftest import World

URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


def test_docs_loads_nothing_from_elsewhere(world: World) -> None:
    r = world.client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert URL.findall(page) == [], "the page names another host"
    assert "<script>" not in page.replace(" ", "")  # no inline script
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(x.endswith("swagger-ui-bundle.js") for x in refs)
    for ref in refs:
        assert ref.startswith("/"), ref
        asset = world.client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["x-content-type-options"] == "nosniff"
        if ref.endswith(".js"):
            assert "javascript" in asset.headers["content-type"], ref
    start = world.client.get("/docs/start.js").text
    assert "/openapi.json" in start and "validatorUrl: null" in start
    assert URL.findall(start) == []


def test_the_bundled_swagger_ui_reads_openapi_3_1(world: World) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI renders from version 5 on."""
    assert world.client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = world.client.get("/docs/assets/swagger-ui-bundle.js").text
    versions = re.findall(r'"(5\.\d+\.\d+)"', bundle) + re.findall(r"5\.\d+\.\d+", bundle[:2000])
    assert versions, "not Swagger UI 5"


def test_no_cdn_backed_pages_remain(world: World) -> None:
    assert world.client.get("/redoc").status_code == 404
    assert world.client.get("/docs/oauth2-redirect").status_code == 404
