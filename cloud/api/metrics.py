"""Prometheus metrics of the API: requests by route template and status, latency, outages.

Each app has its own registry, so several apps in one process (tests) do not
collide. The route label is the matched path template (``/v1/stores/{store_id}``),
never the raw path, so ids do not explode the number of series; paths that
match no route share one label.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nahfeld_cloud_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nahfeld_cloud_http_request_seconds",
            "time to answer an HTTP request, by route template",
            ["route"],
            registry=self.registry,
        )
        self.database_unavailable = Counter(
            "nahfeld_cloud_database_unavailable",
            "requests answered 503 because the database was unreachable",
            registry=self.registry,
        )


def route_template(scope: Scope) -> str:
    """The matched route's template with its router prefix, from what routing left in the scope.

    Routing records the matched route (its template lacks the prefix of the router
    it was included with) and the path parameters; the prefix is what the real
    path has before the template filled in with those parameters.
    """
    route = scope.get("route")
    template: str | None = getattr(route, "path_format", None)
    if route is None or template is None:
        return UNMATCHED
    params = {key: str(value) for key, value in scope.get("path_params", {}).items()}
    try:
        rendered = template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template
    path: str = scope.get("path", "")
    return path[: -len(rendered)] + template if path.endswith(rendered) else template


class MetricsMiddleware:
    """Pure ASGI (no response buffering): counts what the client was finally answered."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = route_template(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
