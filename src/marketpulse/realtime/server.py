"""The Socket.IO server: in-process client manager on memory://, Redis manager when Redis is configured."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import socketio
import structlog

from marketpulse.realtime import metrics
from marketpulse.realtime.bridge import RealtimeBridge, user_room
from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
CHANNEL_PREFIX = "marketpulse-socketio:"


def fanout_redis_url(settings: Settings) -> str | None:
    """Redis that Socket.IO processes share: `redis_url`, else the bus's when the bus is Redis, else none."""
    if settings.redis_url:
        return settings.redis_url
    return settings.bus_url if settings.bus_url.startswith(REDIS_SCHEMES) else None


def socketio_channel(settings: Settings) -> str:
    """The pub/sub channel of this deployment's API processes.

    Redis pub/sub is global to the server, whatever the database number: two deployments on one Redis server with
    one channel would push each other's events to their users. So the default names the deployment: its
    `PULSE_DEPLOYMENT`, else the bus's Redis location with its database (its streams live there: the same
    location means the same deployment), else the fan-out Redis's."""
    if settings.socketio_channel:
        return settings.socketio_channel
    if settings.deployment:
        return f"{CHANNEL_PREFIX}{settings.deployment}"
    bus_redis = settings.bus_url if settings.bus_url.startswith(REDIS_SCHEMES) else None
    url = bus_redis or fanout_redis_url(settings)
    return CHANNEL_PREFIX + (redis_location(url) if url else "local")


def redis_location(url: str) -> str:
    """`host:port/db` (or `unix:path/db`) of a Redis URL: no credentials, defaults made explicit."""
    parts = urlsplit(url)
    query_db = parse_qs(parts.query).get("db", [""])[0]  # overrides the path's, as in redis-py
    if parts.scheme == "unix":
        return f"unix:{parts.path}/{query_db or '0'}"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{query_db or parts.path.strip('/') or '0'}"


def create_socket_server(settings: Settings) -> socketio.AsyncServer:
    url = fanout_redis_url(settings)
    manager = socketio.AsyncRedisManager(url, channel=socketio_channel(settings)) if url else None
    # always_connect: the connection is accepted before the connect handler runs, so the snapshot it emits
    # is delivered; we never refuse a client (the dashboard is public).
    return socketio.AsyncServer(async_mode="asgi", client_manager=manager, always_connect=True)


@dataclass(frozen=True)
class Identity:
    """Whom a Socket.IO connection signed in as (None: anonymous) and their plan (None: the default plan's)."""

    user_id: str | None = None
    plan: str | None = None


ANONYMOUS = Identity()


def attach_handlers(sio: socketio.AsyncServer, bridge: RealtimeBridge,
                    identify: Callable[[Any, dict[str, Any]], Awaitable[Identity]] | None = None) -> None:
    """`identify(auth, environ)`: whom a connection signs in as, from its `auth` payload (`{"token": <access token
    or API key>}`) or the browser's session cookie in the handshake's environ."""

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        metrics.CLIENTS.inc()
        who = await identify(auth, environ) if identify is not None else ANONYMOUS
        # The owner's own events (paper fills, risk halts) go to the signed-in user's room; an anonymous
        # connection sees only the public market and alerts.
        if who.user_id is not None:
            await sio.enter_room(sid, user_room(who.user_id))
        await bridge.join(sid, who.user_id, who.plan)  # its tier's room, table and figures

    async def disconnect(sid: str, *args: Any) -> None:
        metrics.CLIENTS.dec()
        bridge.leave(sid)

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)


def handshake_cookie(environ: dict[str, Any], name: str) -> str | None:
    """One cookie of the Socket.IO handshake request (the browser sends the site's cookies with it)."""
    jar = SimpleCookie()
    try:
        jar.load(environ.get("HTTP_COOKIE") or "")
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


async def start_socket_server(sio: socketio.AsyncServer, timeout_s: float = 5.0) -> None:
    """Start the client manager now rather than on the first connection, and with Redis, wait until it listens:
    Redis pub/sub keeps nothing for late subscribers, so emits from other processes before that would be lost."""
    if not sio.manager_initialized:
        sio.manager_initialized = True
        sio.manager.initialize()
    if not isinstance(sio.manager, socketio.AsyncRedisManager):
        return
    for _ in range(int(timeout_s / 0.01)):
        pubsub = sio.manager.pubsub
        if pubsub is not None and pubsub.subscribed:
            return
        await asyncio.sleep(0.01)
    log.warning("Socket.IO Redis manager not subscribed yet; fan-out from other processes starts when it is")


async def shutdown_socket_server(sio: socketio.AsyncServer) -> None:
    """Stop engine.io's background tasks and the Redis manager's listener, which nothing else cancels."""
    await sio.shutdown()
    listener = getattr(sio.manager, "thread", None)
    if listener is not None and hasattr(listener, "cancel"):
        listener.cancel()
