"""Prometheus: `/metrics`, and request count/latency labelled by route template (bounded label values)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

router = APIRouter(tags=["health"])

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route"])
UNMATCHED = "<unmatched>"  # raw paths of 404s would let any client mint new label values


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so streaming and the body-limit reader are untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = route_template(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/market/symbol/{symbol}`); the router leaves it in the scope."""
    path = getattr(scope.get("route"), "path", None)
    # A Mount (static files) reports its prefix, which is just as bounded.
    return path if isinstance(path, str) else UNMATCHED
