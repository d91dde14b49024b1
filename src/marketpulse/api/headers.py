"""Browser-facing protections on every response, and the Host header check in front of FastAPI and Socket.IO.

- Security headers: a Content-Security-Policy allowing what the pages really load (their own scripts, styles
  and Socket.IO connection; inline styles; `data:` icons), no framing by other sites (`frame-ancestors 'none'`
  and `X-Frame-Options: DENY`), `nosniff`, and no referrer sent off-site. Two routes need a different policy:
  `/docs` and `/redoc` (Swagger UI and ReDoc, served from npm packages) need a worker from a blob, and a
  backtest report (framed by the `/backtests` page) is a self-contained page with inline script and style, so it
  runs sandboxed, without the origin's cookies or API.
- Trusted hosts: a DNS-rebinding page (evil.example resolving to 127.0.0.1) reaches a local API with
  `Host: evil.example`; only hosts in `PULSE_TRUSTED_HOSTS` (and the configured `PULSE_HOST`) are answered,
  the rest get 400. The check wraps the whole ASGI app so `/socket.io` is covered too.
"""

from __future__ import annotations

import re
from typing import Any

import socketio
from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketpulse.settings import Settings

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
DOCS_POLICY = (  # Swagger UI and ReDoc from /vendor (npm), started by our own scripts; ReDoc's search runs in a
    # worker it makes from a blob, and both inline their styles
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
REPORT_POLICY = (  # a generated report: inline only, framed by our own /backtests page, sandboxed
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; sandbox allow-scripts"
)
_REPORT_PATH = re.compile(r"^/api/v1/backtests/[^/]+/report$")
_DOCS_PATHS = ("/docs", "/redoc")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def policy_for(path: str) -> tuple[str, str]:
    """(Content-Security-Policy, X-Frame-Options) for a request path."""
    if _REPORT_PATH.match(path):
        return REPORT_POLICY, "SAMEORIGIN"
    if path in _DOCS_PATHS:
        return DOCS_POLICY, "DENY"
    return PAGE_POLICY, "DENY"


class SecurityHeadersMiddleware:
    """Pure ASGI: adds the headers to the response start, leaves the body (and streaming) alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp, frame_options = policy_for(scope.get("path", ""))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Frame-Options", frame_options)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
            await send(message)

        await self.app(scope, receive, with_headers)


def trusted_hosts(settings: Settings) -> list[str]:
    """`PULSE_TRUSTED_HOSTS` (comma-separated; `*` answers any Host), plus the address the server binds to."""
    hosts = [h.strip() for h in settings.trusted_hosts.split(",") if h.strip()]
    if settings.host not in WILDCARD_BINDS and settings.host not in hosts:
        hosts.append(settings.host)
    return hosts


class PulseApp(socketio.ASGIApp):  # type: ignore[misc]
    """Socket.IO at /socket.io wrapping FastAPI, behind the Host check and the security headers.

    A socketio.ASGIApp still (callers reach FastAPI through `other_asgi_app`), so nothing else changes.
    """

    def __init__(self, sio: socketio.AsyncServer, api: Any, settings: Settings) -> None:
        super().__init__(sio, other_asgi_app=api, socketio_path="socket.io")
        guarded = SecurityHeadersMiddleware(super().__call__)
        self._guarded = TrustedHostMiddleware(guarded, allowed_hosts=trusted_hosts(settings), www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guarded(scope, receive, send)
