"""The ``/metrics`` (Prometheus) and ``/health`` endpoint every service serves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Health = Callable[[], tuple[bool, Mapping[str, Any]]]


async def serve_metrics(host: str, port: int, registry: CollectorRegistry, health: Health, *,
                        before_scrape: Callable[[], None] | None = None
                        ) -> web.AppRunner | None:
    """Start the endpoint on ``host:port`` (``port`` 0: none); the caller cleans it up.

    ``/health`` answers 200 when ``health()`` says the service can do its job, else
    503, with the details as JSON either way.
    """
    if not port:
        return None

    async def metrics(_: web.Request) -> web.Response:
        if before_scrape is not None:
            before_scrape()
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok, detail = health()
        return web.Response(status=200 if ok else 503, content_type="application/json",
                            body=orjson.dumps(dict(detail)))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
