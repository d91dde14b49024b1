"""The rate limit in front of every route: finds who calls (their plan), counts the request, and answers 429 or
adds the `X-RateLimit-*` headers to whatever the route answers (errors included).

Who calls: a Bearer token or personal API key (per key: each key has its own budget), else the session cookie,
else the client address (anonymous: the lowest plan). A credential that doesn't check out counts as anonymous; the
route refuses it itself. Requests carrying the ingest key (`X-API-Key`) are the platform's own feeders: not
counted. The principal found is kept on the request so `current_user` doesn't look it up twice.
"""

from __future__ import annotations

import hmac
import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketpulse.accounts.core import InvalidToken
from marketpulse.accounts.plans import Plan, plan_named
from marketpulse.accounts.service import AccountNotActive, AccountsService
from marketpulse.ratelimit.core import anonymous_plan, is_limited, rate_headers, refusal_body
from marketpulse.settings import Settings

PRINCIPAL_STATE = "pulse_principal"  # (token, Principal) on request.state
API_PREFIX = "/api/"  # what counts as an API call for metered billing
ACCESS_COOKIE = "mp_access"  # accounts.views.ACCESS_COOKIE (not imported: views import this package's users)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        if runtime.settings.rate_limits == "off" or _is_ingest(scope, runtime.settings):
            await self.app(scope, receive, send)
            return
        services = runtime.services
        caller, plan = await identify(scope, services.accounts)
        user_id = _user_of(scope)
        metered = user_id is not None and await services.metering.metered(user_id, plan)
        decision = await services.rate_limits.hit(caller, plan, metered=metered)
        headers = rate_headers(decision.state, services.rate_limits.now_s())
        if not decision.allowed:
            await _refuse(send, headers, refusal_body(decision.state, services.rate_limits.now_s()))
            return
        if user_id is not None and scope["path"].startswith(API_PREFIX):  # an API call: counted for billing
            services.metering.count(user_id)
            services.metering.maybe_flush()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def identify(scope: Scope, accounts: AccountsService) -> tuple[str, Plan]:
    """Who a request counts against, and their plan."""
    request = Request(scope)
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    token = token or request.cookies.get(ACCESS_COOKIE, "")
    if token:
        try:
            principal = await accounts.principal(token)
        except (InvalidToken, AccountNotActive):
            pass
        else:
            request.state.__setattr__(PRINCIPAL_STATE, (token, principal))
            caller = f"key:{principal.key_id}" if principal.key_id else f"user:{principal.user.id}"
            return caller, plan_named(principal.user.plan)
    address = scope["client"][0] if scope.get("client") else "unknown"
    return f"addr:{address}", anonymous_plan()


def _user_of(scope: Scope) -> str | None:
    """The signed-in caller `identify` found (None: anonymous)."""
    found = scope.get("state", {}).get(PRINCIPAL_STATE)
    return str(found[1].user.id) if found else None


def _is_ingest(scope: Scope, settings: Settings) -> bool:
    """The platform's own feeders (`X-API-Key` with the ingest key) push market data at the rate it comes."""
    given = Headers(scope=scope).get("x-api-key")
    return given is not None and hmac.compare_digest(given.encode(),
                                                     settings.ingest_api_key.get_secret_value().encode())


async def _refuse(send: Send, headers: dict[str, str], body: dict[str, object]) -> None:
    raw = json.dumps(body).encode()
    pairs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
             *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": 429, "headers": pairs})
    await send({"type": "http.response.body", "body": raw})
