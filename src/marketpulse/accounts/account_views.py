"""Your own account's sessions and notification preferences (the settings page's API).

    GET    /api/v1/account/sessions          your live sessions, newest last; `current` marks this one
    DELETE /api/v1/account/sessions/{id}     sign that session out (404 unless it is one of yours and live)
    GET    /api/v1/account/preferences       {time_zone, quiet_hours_start, quiet_hours_end, channels,
                                              quiet_hours_low_priority, flood_limit_per_minute}
    PUT    /api/v1/account/preferences       the same body: replaces them (channels within your plan)

Both need a signed-in session (not an API key): they manage the account itself.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.accounts.plans import plan_named
from marketpulse.accounts.preferences import DEFAULT_FLOOD_LIMIT, MAX_FLOOD_LIMIT, BadPreference, Preferences, check
from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import AccountsService, Principal
from marketpulse.accounts.views import get_accounts, session_user
from marketpulse.api.pages import Page, page

router = APIRouter(tags=["account"])


class SessionOut(BaseModel):
    id: str
    created_at_ms: int
    last_used_at_ms: int
    expires_at_ms: int
    client: str | None
    current: bool


class PreferencesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: str = Field(default="UTC", min_length=1, max_length=64)
    quiet_hours_start: str | None = Field(default=None, max_length=5, description="HH:MM, local time")
    quiet_hours_end: str | None = Field(default=None, max_length=5, description="HH:MM, local time")
    channels: list[str] = Field(default_factory=lambda: ["email"], min_length=1, max_length=8)
    quiet_hours_low_priority: Literal["hold", "drop"] = Field(
        default="hold", description="low-priority alerts in quiet hours: held until they end, or dropped")
    flood_limit_per_minute: int = Field(
        default=DEFAULT_FLOOD_LIMIT, ge=0, le=MAX_FLOOD_LIMIT,
        description="alerts a minute delivered one by one; the rest of the minute's arrive as one digest per channel "
                    "at its end (0: no limit)")


def _body(prefs: Preferences) -> PreferencesBody:
    return PreferencesBody(time_zone=prefs.time_zone, quiet_hours_start=prefs.quiet_hours_start,
                           quiet_hours_end=prefs.quiet_hours_end, channels=list(prefs.channels),
                           quiet_hours_low_priority=prefs.quiet_hours_low_priority,  # type: ignore[arg-type]
                           flood_limit_per_minute=prefs.flood_limit_per_minute)


@router.get("/api/v1/account/sessions", response_model=Page[SessionOut], responses=UNAUTHORIZED)
async def list_sessions(principal: Principal = Depends(session_user),
                        accounts: AccountsService = Depends(get_accounts)) -> Page[SessionOut]:
    rows = await accounts.live_sessions(principal.user.id)
    return page([SessionOut(id=r.id, created_at_ms=r.created_at_ms, last_used_at_ms=r.last_used_at_ms,
                       expires_at_ms=r.expires_at_ms, client=r.client, current=r.id == principal.session_id)
                 for r in rows])


@router.delete("/api/v1/account/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, responses={**UNAUTHORIZED, 404: {"description": "You have no such session"}})
async def end_session(session_id: str, principal: Principal = Depends(session_user),
                      accounts: AccountsService = Depends(get_accounts)) -> Response:
    # Only the caller's own live sessions: anyone else's id answers as if it didn't exist.
    if session_id not in {r.id for r in await accounts.live_sessions(principal.user.id)}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no session {session_id}")
    await accounts.signout(session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/v1/account/preferences", response_model=PreferencesBody, responses=UNAUTHORIZED)
async def get_preferences(principal: Principal = Depends(session_user),
                          accounts: AccountsService = Depends(get_accounts)) -> PreferencesBody:
    return _body(await accounts.preferences.get(principal.user.id))


@router.put("/api/v1/account/preferences", response_model=PreferencesBody, responses=UNAUTHORIZED)
async def put_preferences(body: PreferencesBody, principal: Principal = Depends(session_user),
                          accounts: AccountsService = Depends(get_accounts)) -> PreferencesBody:
    prefs = Preferences(body.time_zone, body.quiet_hours_start, body.quiet_hours_end, tuple(body.channels),
                        body.quiet_hours_low_priority, body.flood_limit_per_minute)
    try:
        checked = check(prefs, plan_named(principal.user.plan))
    except BadPreference as exc:
        raise RequestValidationError([{"loc": ("body", exc.field), "msg": str(exc), "type": "value_error",
                                       "input": getattr(body, exc.field)}]) from None
    return _body(await accounts.preferences.put(principal.user.id, checked))
