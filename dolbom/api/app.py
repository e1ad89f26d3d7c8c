"""The FastAPI app: ``create_app(settings)`` builds everything, once, and nothing at import.

- a database engine and session factory (the registry's; SQLite or PostgreSQL),
- read-only InfluxDB clients (resident views): one per cell's InfluxDB, the settings'
  one for homes whose cell has none (``dolbom.api.cell_readers``),
- the login limiter, Prometheus metrics (``/metrics``) and ``/health`` (the database,
  and the settings' and every cell's InfluxDB: ``dolbom.api.health``),
- the alert stream's single poller, run in the app's lifespan,
- the routes under ``/api/v1``, then the console (``dolbom.api.console.install``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from dolbom import __version__
from dolbom.api import audit, console, docs
from dolbom.api import health as health_of
from dolbom.api.auth import INFO_KEY, AuthConfig, LoginLimiter
from dolbom.api.cell_readers import CellReaders
from dolbom.api.deps import ApiContext
from dolbom.api.errors import install_handlers
from dolbom.api.events import AlertBus
from dolbom.api.headers import SecurityHeaders
from dolbom.api.metrics import ApiMetrics, MetricsMiddleware
from dolbom.api.proxy import TrustedProxies
from dolbom.api.routes import (
    alerts,
    devices,
    homes,
    reports,
    residents,
    sites,
    users,
    views,
)
from dolbom.api.routes import auth as auth_routes
from dolbom.api.schemas import Health
from dolbom.api.settings import ApiSettings
from dolbom.influx.query import InfluxReader
from dolbom.registry.db import make_engine
from dolbom.settings import SettingsError


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(settings: ApiSettings, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    now = clock or _utcnow
    engine = make_engine(settings.database_url)
    metrics = ApiMetrics()
    limiter = LoginLimiter(settings.login_max_failures, settings.login_window_s)
    auth_cfg = AuthConfig(settings, limiter,
                          on_failure=lambda reason: metrics.login_failures.labels(reason).inc())
    sessions: sessionmaker[Session] = sessionmaker(bind=engine, expire_on_commit=False,
                                                   info={INFO_KEY: auth_cfg})
    bus = AlertBus(sessions, settings.sse_poll_s, settings.sse_queue_size, metrics)
    try:
        audit_key = audit.load_key(settings)
    except ValueError as e:
        raise SettingsError(f"config error: {e}") from None
    influx = InfluxReader(settings.influx)
    ctx = ApiContext(settings=settings, sessions=sessions, clock=now, influx=influx, bus=bus,
                     metrics=metrics, auth=auth_cfg, audit_key=audit_key,
                     cell_readers=CellReaders(settings.influx, influx))

    async def checkpoints(stop: asyncio.Event) -> None:
        """Anchor the audit chain: its newest id and hash to the checkpoint file and the
        log, every ``audit_checkpoint_s`` while it grows, and once more at shutdown."""
        last: list[audit.Checkpoint | None] = [None]

        def once() -> None:
            with sessions() as s:
                path = settings.audit_checkpoint_file
                if path is not None:
                    last[0] = audit.write_checkpoint(s, path, now(), last[0]) or last[0]
                else:
                    found = audit.latest(s)
                    if found is not None and (last[0] is None or last[0].id != found[0]):
                        last[0] = audit.Checkpoint(now().isoformat(), *found)
                        audit.log.info("audit checkpoint %s", last[0])

        while True:
            try:
                await asyncio.to_thread(once)
            except Exception:  # a full disk must not stop the API; said in the log
                audit.log.exception("audit checkpoint failed")
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.audit_checkpoint_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await bus.start()
        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(bus.run(stop), name="alert-stream-poller")
                tg.create_task(checkpoints(stop), name="audit-checkpointer")
                try:
                    yield
                finally:
                    stop.set()
        finally:
            engine.dispose()

    # /docs is ours (dolbom.api.docs: Swagger UI's files served locally, no CDN); ReDoc
    # would load from a CDN, so it is off.
    app = FastAPI(title="Dolbom API", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,
                  description="Registry, alerts, resident views and reports of Dolbom "
                              "(DESIGN.md §5, §6). Sign in at /api/v1/auth/token.")
    app.state.ctx = ctx
    install_handlers(app)
    for module in (auth_routes, sites, homes, residents, views, devices, alerts, reports,
                   users):
        app.include_router(module.router)

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness and the state of the database and of every InfluxDB the API reads:
        the settings' and each cell's (``dolbom.api.health``; no personal data)."""
        cells: dict[str, str] | None
        try:
            with sessions() as s:
                s.execute(text("SELECT 1"))
                cells = health_of.cell_influx_urls(s)
            db_ok = True
        except Exception:  # any failure means "not healthy", reported, not raised
            db_ok, cells = False, None
        influx_ok, per_cell = health_of.influx_up(ctx.influx.url, cells or {})
        return Health(status="ok" if db_ok and influx_ok else "degraded", database=db_ok,
                      influxdb=influx_ok, sse_subscribers=bus.subscribers,
                      influxdb_cells=None if cells is None else per_cell)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    console.install(app)
    docs.install(app)
    # Added last, so outermost: every route, the limiter and the audit log see the client
    # address and scheme a trusted proxy forwarded, or the real peer (dolbom.api.proxy).
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TrustedProxies, networks=settings.proxy_networks)
    return app
