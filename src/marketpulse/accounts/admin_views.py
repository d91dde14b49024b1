"""The admin API. Every route needs a signed-in user with the admin role (403 otherwise); every change lands in
the audit log.

    GET    /api/v1/admin/users                ?q=&plan=&status=&role=&signed_up_from=&signed_up_to=&limit=&offset=
    GET    /api/v1/admin/users/{id}           the user, their live sessions and API keys, last activity
    PATCH  /api/v1/admin/users/{id}           {plan?, status?, role?}
    DELETE /api/v1/admin/users/{id}           the user and what hangs off the account
    POST   /api/v1/admin/users/{id}/signout   ends every session of the user
    POST   /api/v1/admin/users/{id}/password-reset   the password stops working; a reset link is mailed
    GET    /api/v1/admin/metrics              users by plan/status/role, sign-ups per day, live sessions
    GET    /api/v1/admin/audit-log            ?action=&actor_id=&target_id=&since=&until=&limit=&offset=
    GET    /api/v1/admin/health               database and bus checks, bus backlog, dead letters, process uptime

With `PULSE_ADMIN_ALLOWED_IPS` set, every route (and the /admin pages) answers 403 to a client address outside it,
before anything else is looked at.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketpulse.accounts.admin import SelfChange, UserNotFound, UserQuery
from marketpulse.accounts.api_keys import key_json
from marketpulse.accounts.audit import AuditQuery, audit_json
from marketpulse.accounts.core import Role
from marketpulse.accounts.plans import PLAN_NAMES, plan_named
from marketpulse.accounts.schemas import UNAUTHORIZED, Accepted, me_json
from marketpulse.accounts.service import AccountsService, Principal
from marketpulse.accounts.tables import AuthSessionRow, UserRow
from marketpulse.accounts.views import get_accounts, session_user
from marketpulse.api.health import platform_health
from marketpulse.api.pages import Cursor, Page, next_offset, offset_of
from marketpulse.times import EpochMs


def admin_address(request: Request) -> None:
    """403 unless the client's address is in `PULSE_ADMIN_ALLOWED_IPS` (empty: any address). The address is
    uvicorn's `client`: the peer's, or X-Forwarded-For's only when the peer is one of its trusted proxies."""
    networks = request.app.state.runtime.settings.admin_networks()
    if not networks:
        return
    address = _address(request.client.host if request.client else None)
    if address is None or not any(address in net for net in networks if net.version == address.version):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "address_not_allowed", "message": "the admin console isn't reachable from this address"})


def _address(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return None  # not an IP (a test client's name, a Unix socket): never in an allowlist
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.1.2.3 from a dual-stack socket is 10.1.2.3
    return mapped or address


router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(admin_address)], responses={
    **UNAUTHORIZED, 403: {"description": "Not an administrator (or the account is suspended or banned), or the "
                                         "client address is outside PULSE_ADMIN_ALLOWED_IPS"},
})
USER_ROUTE: dict[int | str, dict[str, Any]] = {404: {"description": "No such user"}}
SELF_CHANGE: dict[int | str, dict[str, Any]] = {
    409: {"description": "An administrator can't change their own role or status, or delete themselves"},
}

PlanName = Literal["free", "pro", "elite", "premium", "enterprise"]
StatusName = Literal["active", "suspended", "banned"]
RoleName = Literal["user", "admin"]
assert set(PlanName.__args__) == set(PLAN_NAMES)  # type: ignore[attr-defined]


async def require_admin(principal: Principal = Depends(session_user),
                        accounts: AccountsService = Depends(get_accounts)) -> Principal:
    if principal.user.role != Role.ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={"reason": "admin_only",
                                                               "message": "this needs an administrator"})
    # The admin still signs in (so they can enrol); only the admin powers wait for the second factor. Either kind
    # counts (TOTP or a registered passkey): each makes every later sign-in ask for it (`needs_second_factor`).
    if accounts.settings.admin_require_two_factor and not await accounts.needs_second_factor(principal.user.id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "two_factor_required", "message": "administrators must set up a second factor first: "
                                                        "POST /api/v1/account/two-factor/enrol (TOTP) or "
                                                        "POST /api/v1/account/passkeys/register/options (passkey)"})
    return principal


class UserChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: PlanName | None = None
    status: StatusName | None = None
    role: RoleName | None = None

    @model_validator(mode="after")
    def _something(self) -> UserChanges:
        if self.plan is None and self.status is None and self.role is None:
            raise ValueError("give at least one of plan, status, role")
        return self

    def as_dict(self) -> dict[str, str]:
        out = {k: v for k, v in self.model_dump().items() if v is not None}
        if "plan" in out:
            out["plan"] = plan_named(out["plan"]).name
        return out


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


class AdminUser(BaseModel):
    id: str
    email: str | None
    plan: str
    role: str
    status: str
    email_verified: bool
    created_at_ms: int
    updated_at_ms: int


class UserPage(Page[AdminUser]):
    total: int = Field(description="users matching the filters, over every page")
    limit: int
    offset: int


class SessionOut(BaseModel):
    id: str
    created_at_ms: int
    last_used_at_ms: int
    expires_at_ms: int
    client: str | None


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="the start of the key, to recognise it (the secret is never shown again)")
    scopes: list[str]
    created_at_ms: int
    last_used_at_ms: int | None


class AdminUserDetails(AdminUser):
    sessions: list[SessionOut] = Field(description="live sessions")
    api_keys: list[ApiKeyOut] = Field(description="live personal API keys")
    last_activity_ms: int | None = Field(description="newest use of any session or key; null: never")


class SessionsEnded(BaseModel):
    sessions_ended: int


class DayCount(BaseModel):
    day: str = Field(description="UTC date, YYYY-MM-DD")
    count: int


class AdminMetrics(BaseModel):
    users_by_plan: dict[str, int]
    users_by_status: dict[str, int]
    users_by_role: dict[str, int]
    active_sessions: int
    signups_per_day: list[DayCount]


class AuditEntry(BaseModel):
    id: int
    created_at_ms: int
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    client: str | None


class AuditPage(Page[AuditEntry]):
    total: int
    limit: int
    offset: int


def _admin_user_json(user: UserRow) -> dict[str, Any]:
    out = me_json(user).model_dump()
    out.pop("wallets")
    out["updated_at_ms"] = user.updated_at_ms
    return out


def _session_json(row: AuthSessionRow) -> dict[str, Any]:
    return {"id": row.id, "created_at_ms": row.created_at_ms, "last_used_at_ms": row.last_used_at_ms,
            "expires_at_ms": row.expires_at_ms, "client": row.client}


def _not_found(user_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no user {user_id}")


@router.get("/users", response_model=UserPage)
async def list_users(
    q: str | None = Query(None, max_length=320, description="part of the address, any case"),
    plan: PlanName | None = None, status_: StatusName | None = Query(None, alias="status"),
    role: RoleName | None = None,
    signed_up_from: EpochMs | None = Query(None, description="epoch ms, inclusive"),
    signed_up_to: EpochMs | None = Query(None, description="epoch ms, exclusive"),
    limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000), cursor: Cursor = None,
    _: Principal = Depends(require_admin), accounts: AccountsService = Depends(get_accounts),
) -> dict[str, Any]:
    offset = offset_of(offset, cursor)
    rows, total = await accounts.admin.users(UserQuery(q, plan, status_, role, signed_up_from, signed_up_to,
                                                       limit, offset))
    return {"data": [_admin_user_json(u) for u in rows], "next": next_offset(offset, len(rows), total),
            "total": total, "limit": limit, "offset": offset}


@router.get("/users/{user_id}", response_model=AdminUserDetails, responses=USER_ROUTE)
async def get_user(user_id: str, _: Principal = Depends(require_admin),
                   accounts: AccountsService = Depends(get_accounts)) -> dict[str, Any]:
    try:
        user, sessions = await accounts.admin.user(user_id)
    except UserNotFound:
        raise _not_found(user_id) from None
    keys = await accounts.api_keys.live(user_id)
    return {**_admin_user_json(user), "sessions": [_session_json(s) for s in sessions],
            "api_keys": [key_json(k) for k in keys], "last_activity_ms": await accounts.admin.last_activity_ms(user_id)}


@router.patch("/users/{user_id}", response_model=AdminUser, responses={**USER_ROUTE, **SELF_CHANGE})
async def update_user(user_id: str, body: UserChanges, request: Request,
                      admin: Principal = Depends(require_admin),
                      accounts: AccountsService = Depends(get_accounts)) -> dict[str, Any]:
    try:
        user = await accounts.admin.update(admin, user_id, body.as_dict(), _client(request))
    except UserNotFound:
        raise _not_found(user_id) from None
    except SelfChange as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return _admin_user_json(user)


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses={**USER_ROUTE, **SELF_CHANGE})
async def delete_user(user_id: str, request: Request, admin: Principal = Depends(require_admin),
                      accounts: AccountsService = Depends(get_accounts)) -> Response:
    try:
        await accounts.admin.delete(admin, user_id, _client(request))
    except UserNotFound:
        raise _not_found(user_id) from None
    except SelfChange as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/users/{user_id}/signout", response_model=SessionsEnded, responses=USER_ROUTE)
async def sign_out_everywhere(user_id: str, request: Request, admin: Principal = Depends(require_admin),
                              accounts: AccountsService = Depends(get_accounts)) -> dict[str, int]:
    try:
        return {"sessions_ended": await accounts.admin.sign_out_everywhere(admin, user_id, _client(request))}
    except UserNotFound:
        raise _not_found(user_id) from None


@router.post("/users/{user_id}/password-reset", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             responses=USER_ROUTE)
async def force_password_reset(user_id: str, request: Request, admin: Principal = Depends(require_admin),
                               accounts: AccountsService = Depends(get_accounts)) -> dict[str, str]:
    try:
        await accounts.admin.force_password_reset(admin, user_id, _client(request))
    except UserNotFound:
        raise _not_found(user_id) from None
    return {"detail": "the password no longer works; a reset link was mailed to the user"}


@router.get("/metrics", response_model=AdminMetrics)
async def metrics(_: Principal = Depends(require_admin),
                  accounts: AccountsService = Depends(get_accounts)) -> dict[str, Any]:
    """Users by plan, status and role; sign-ups per UTC day (last 30 days); live sessions."""
    return await accounts.admin.metrics()


@router.get("/audit-log", response_model=AuditPage)
async def audit_log(
    action: str | None = Query(None, max_length=48, description="exact, or a prefix ending in '.' (admin.)"),
    actor_id: str | None = Query(None, max_length=36), target_id: str | None = Query(None, max_length=36),
    since: EpochMs | None = Query(None, description="epoch ms, inclusive"),
    until: EpochMs | None = Query(None, description="epoch ms, exclusive"),
    limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000), cursor: Cursor = None,
    _: Principal = Depends(require_admin), accounts: AccountsService = Depends(get_accounts),
) -> dict[str, Any]:
    offset = offset_of(offset, cursor)
    rows, total = await accounts.audit.search(AuditQuery(action, actor_id, target_id, since, until, limit, offset))
    return {"data": [audit_json(r) for r in rows], "next": next_offset(offset, len(rows), total), "total": total,
            "limit": limit, "offset": offset}


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="database and bus: ok, or a short reason")
    bus_groups: list[dict[str, Any]] = Field(description="each consumer group's backlog: topic, group, lag, pending")
    dead_letters: dict[str, int] = Field(description="dead letters per topic (counted up to 1000)")
    uptime_s: float | None = Field(description="seconds since this API process started")


@router.get("/health", response_model=HealthOut)
async def health(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    """The platform's own health as this API process sees it (the page polls it)."""
    return await platform_health(request.app.state.runtime)
