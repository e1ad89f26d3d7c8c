"""Prometheus metrics of one API app (its own registry: two apps in a test do not mix)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("dolbom_api_requests_total",
                                "HTTP requests, by method, route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("dolbom_api_request_seconds",
                                 "Time to the response headers, by method and route template",
                                 ["method", "route"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.sse_subscribers = Gauge("dolbom_api_sse_subscribers",
                                     "Clients connected to the alert stream", registry=r)
        self.sse_dropped = Counter("dolbom_api_sse_dropped_total",
                                   "Alert-stream clients disconnected for falling behind",
                                   registry=r)
        self.sse_polls = Counter("dolbom_api_sse_polls_total",
                                 "Polls of the alert journal by the alert stream", registry=r)
        self.sse_poll_errors = Counter("dolbom_api_sse_poll_errors_total",
                                       "Failed polls of the alert journal", registry=r)
        self.login_failures = Counter("dolbom_api_login_failures_total",
                                      "Refused sign-ins, by reason", ["reason"], registry=r)
        self.audit_entries = Counter("dolbom_api_audit_entries_total",
                                     "Audit-log entries written", registry=r)


class MetricsMiddleware:
    """Counts and times every request by its route template (never the raw path: ids in
    paths would make one series per resident)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                route = _route(scope)
                self.metrics.latency.labels(scope["method"], route).observe(
                    time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(scope["method"], _route(scope), str(status[0])).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
