"""Who owns a request's rows: the signed-in user, and nobody else.

A request is signed in by `Authorization: Bearer <access token>` (or a personal API key with the right scope),
or by the browser's access cookie, in which case a state-changing method must also echo the CSRF cookie in
`X-CSRF-Token` (double submit, see `accounts/views.py`). Without any of these the answer is 401: there is no
shared anonymous owner any more. A token that is present but invalid, expired or ended is refused (401), a
suspended or banned user's too (403), never quietly treated as anonymous.

Views depend on `current_owner` and every query filters by the owner, so a signed-in user sees only their own
paper account, orders, deployments and backtest jobs, and another user's ids answer 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.views import BEARER, request_principal, require_scope

# What a route behind `current_owner` may also answer (for its OpenAPI document): 401 and 403.
OWNER_RESPONSES = UNAUTHORIZED


def owner_with_scope(scope: str | None = None) -> Callable[..., Awaitable[str]]:
    """A FastAPI dependency answering the signed-in owner's id. An API key needs `scope` (default: `read` to
    look, `trade` to change); alert routes ask for `alerts`."""

    async def owner(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> str:
        # BEARER puts the scheme in the OpenAPI document; the cookie path is read from the request itself.
        principal = await request_principal(request, credentials.credentials if credentials else None)
        require_scope(request, principal, scope)
        request.state.owner_plan = principal.user.plan
        return principal.user.id

    return owner


current_owner = owner_with_scope()


def owner_plan(request: Request) -> str:
    """The signed-in owner's plan as stored now (after `current_owner` ran for this request): a plan change
    applies to the owner's next order or job."""
    plan = getattr(request.state, "owner_plan", None)
    if not isinstance(plan, str):
        raise RuntimeError("owner_plan() needs current_owner to have run for this request")
    return plan
