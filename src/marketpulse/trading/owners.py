"""Who owns a request's rows: the signed-in user when the request carries `Authorization: Bearer <access token>`
(or a personal API key with the right scope), else the one shared default owner (the platform as it was before
accounts; routes still accept anonymous use).

Views depend on `current_owner` and every query filters by the owner, so a signed-in user sees only their own
paper account, orders, deployments and backtest jobs, and another user's ids answer 404. A token that is
present but invalid, expired or ended is refused (401), never quietly treated as anonymous. Browser cookies are
not read here yet: the pages' requests don't carry the CSRF header a cookie-authenticated change needs.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.security.utils import get_authorization_scheme_param

DEFAULT_OWNER = "default"


async def current_owner(request: Request) -> str:
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    if not token or scheme.lower() != "bearer":
        return DEFAULT_OWNER
    from marketpulse.accounts.views import principal_for_token, require_scope  # accounts build on trading

    principal = await principal_for_token(request, token)
    require_scope(request, principal)  # a personal API key: `read` to look, `trade` to change
    request.state.owner_plan = principal.user.plan
    return principal.user.id


def owner_plan(request: Request) -> str | None:
    """The signed-in owner's plan (after `current_owner` ran for this request); None for the anonymous owner,
    whose limits come from PULSE_PAPER_PLAN."""
    plan = getattr(request.state, "owner_plan", None)
    return plan if isinstance(plan, str) else None
