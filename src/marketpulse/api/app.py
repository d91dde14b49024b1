"""The ASGI application: Socket.IO at /socket.io wrapping FastAPI (REST, /docs, dashboard, static files).

    app = create_app(Runtime.open(settings))
    uvicorn.run(app)        # lifespan="on" (the default) so the realtime bridge starts

The lifespan loads the open-interest cache from the database, starts Socket.IO's client manager (with Redis: waits
until it listens) and the realtime bridge (bus → table, OI cache and Socket.IO events); on shutdown it stops them.
It leaves the Runtime open: its owner closes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import socketio
import structlog
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

import marketpulse
from marketpulse.api.errors import document_app_errors, install_error_handlers
from marketpulse.api.headers import PulseApp
from marketpulse.api.metrics import MetricsMiddleware
from marketpulse.api.routers import load_routers
from marketpulse.api.types import check_request_values
from marketpulse.marketdata.open_interest import OpenInterestCache, load_open_interest
from marketpulse.ratelimit.middleware import RateLimitMiddleware
from marketpulse.realtime.bridge import RealtimeBridge
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.realtime.server import (
    ANONYMOUS,
    Identity,
    attach_handlers,
    create_socket_server,
    handshake_cookie,
    shutdown_socket_server,
    start_socket_server,
)
from marketpulse.runtime import Runtime
from marketpulse.web.assets import vendor_router

log = structlog.get_logger(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "web"


def create_app(runtime: Runtime) -> socketio.ASGIApp:
    settings = runtime.settings
    feed = MarketFeed()
    open_interest = OpenInterestCache(
        runtime.clock, settings.open_interest_stale_s, settings.open_interest_dangerously_stale_s
    )
    sio = create_socket_server(settings)
    bridge = RealtimeBridge(
        bus=runtime.bus, sio=sio, feed=feed, open_interest=open_interest, clock=runtime.clock,
        sessions=runtime.sessions, debounce_ms=settings.market_debounce_ms,
    )
    attach_handlers(sio, bridge, identify=socket_identity(runtime))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        open_interest.load(await load_open_interest(runtime.sessions))
        feed.apply_open_interest(open_interest.values())
        await start_socket_server(sio)
        await bridge.start()
        try:
            yield
        finally:
            await bridge.stop()
            await shutdown_socket_server(sio)
            if "services" in runtime.__dict__:  # the webhook's config cache follows changes on this loop: stop here
                await runtime.services.signals.stop_following()

    api = FastAPI(
        title="marketpulse", version=marketpulse.__version__,
        description="Crypto market intelligence: live USDT-perpetual table, open interest, volume-spike alerts.",
        lifespan=lifespan, docs_url=None, redoc_url=None,  # /docs and /redoc: web/views.py, offline
        # One body limit for every route, counted while the body streams in (413 past it).
        max_body_size=settings.max_body_bytes,
        dependencies=[Depends(check_request_values)],
    )
    install_error_handlers(api)
    document_app_errors(api)
    api.state.runtime = runtime
    api.state.market_feed = feed
    api.state.open_interest = open_interest
    api.state.sio = sio
    for router in load_routers():
        api.include_router(router)
    api.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    api.include_router(vendor_router(settings))
    api.add_middleware(RateLimitMiddleware)  # inside the metrics: refusals are counted like other answers
    api.add_middleware(MetricsMiddleware)
    return PulseApp(sio, api, settings)


def socket_identity(runtime: Runtime) -> Callable[[Any, dict[str, Any]], Awaitable[Identity]]:
    """Whom a Socket.IO connection signs in as: `auth: {token}`, else the session cookie (`mp_access`); anonymous
    ones don't build the services (realtime-only processes)."""
    from marketpulse.accounts.views import ACCESS_COOKIE

    async def identify(auth: Any, environ: dict[str, Any]) -> Identity:
        token = auth.get("token") if isinstance(auth, dict) else None
        cookie = handshake_cookie(environ, ACCESS_COOKIE)
        if not token and not cookie:
            return ANONYMOUS
        principal = await runtime.services.accounts.principal_of_socket(auth, cookie)
        return ANONYMOUS if principal is None else Identity(principal.user.id, principal.user.plan)

    return identify
