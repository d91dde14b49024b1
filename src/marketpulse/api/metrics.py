"""Prometheus: `/metrics`, and request count/latency labelled by route template (bounded label values).

The platform's own counters live in `marketpulse.metrics` (ingest frames, alerts raised, paper fills, backtest job
durations), counted where the work happens; bus lag per consumer group is read from the bus at each scrape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketpulse.bus import EventBus
from marketpulse.metrics import BUS_LAG, BUS_PENDING

log = structlog.get_logger(__name__)

router = APIRouter(tags=["health"])

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "route"])
UNMATCHED = "<unmatched>"  # raw paths of 404s would let any client mint new label values
LAG_TIMEOUT_S = 2.0


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    await refresh_bus_lag(request.app.state.runtime.bus)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def refresh_bus_lag(bus: EventBus) -> None:
    """Set the lag gauges to the bus's current figures; groups gone since the last scrape disappear."""
    try:
        lags = await asyncio.wait_for(bus.group_lags(), LAG_TIMEOUT_S)
    except Exception as exc:  # a slow or failing bus must not take /metrics down with it
        log.warning("bus lag unavailable", error_type=type(exc).__name__)
        return
    BUS_LAG.clear()
    BUS_PENDING.clear()
    for g in lags:
        if g.lag is not None:
            BUS_LAG.labels(g.topic, g.group).set(g.lag)
        BUS_PENDING.labels(g.topic, g.group).set(g.pending)


def serve_metrics(port: int, host: str) -> Callable[[], Awaitable[None]]:
    """Prometheus' /metrics on a port of its own, for a process without the API (`pulse worker`, `pulse ingest`),
    whose counts (alerts raised, paper fills, ingest frames) an API process can't see; returns its stop."""
    server, thread = start_http_server(port, addr=host)
    log.info("metrics served", url=f"http://{host}:{port}/metrics")

    async def stop() -> None:
        server.shutdown()
        server.server_close()
        await asyncio.to_thread(thread.join, 5)

    return stop


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so streaming and the body-limit reader are untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The labelled children, looked up once per label set (`labels()` locks and hashes on every call).
        self._counts: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        outer_root = scope.get("root_path", "")

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            elapsed = time.perf_counter() - started
            method, route = scope["method"], route_template(scope, outer_root)
            count = self._counts.get((method, route, status))
            if count is None:
                count = self._counts[(method, route, status)] = REQUESTS.labels(method, route, str(status))
            latency = self._latencies.get((method, route))
            if latency is None:
                latency = self._latencies[(method, route)] = LATENCY.labels(method, route)
            count.inc()
            latency.observe(elapsed)


def route_template(scope: Scope, outer_root: str = "") -> str:
    """The matched route's path template (`/api/v1/market/symbol/{symbol}`); the router leaves it in the scope.

    A mount (static files) sets no route but extends `root_path` by its prefix: labelled `/static/{path}`.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    mounted = scope.get("root_path", "")
    if mounted != outer_root and mounted.startswith(outer_root):
        return f"{mounted[len(outer_root):]}/{{path}}"
    return UNMATCHED
