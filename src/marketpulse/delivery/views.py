"""The delivery API.

    POST   /api/v1/account/destinations               {channel, address} → 201 the destination (pending) and, for a
                                                      webhook, its signing secret (shown once); a verification code
                                                      goes out over the channel (webhook: POST {"type":
                                                      "verification", "code": "…"})
    POST   /api/v1/account/destinations/{id}/verify   {code} → the destination, verified
    GET    /api/v1/account/destinations               the user's destinations with their state and last error
    DELETE /api/v1/account/destinations/{id}          204; its queued notifications are skipped
    GET    /api/v1/account/notifications              ?status=&channel=&unread=&limit=&offset= the user's notification
                                                      history, and `unread`: their unread in-app count (the bell)
    POST   /api/v1/account/notifications/read         {ids: [...]} or {all: true}: in-app notifications marked read
    GET    /api/v1/admin/notifications                ?status=dead&limit=&offset= everyone's (administrators)
    POST   /api/v1/admin/notifications/{id}/retry     a dead or skipped notification back in the outbox

Another user's destination answers 404, as does an unknown one.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketpulse.accounts.admin_views import require_admin
from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import Principal
from marketpulse.accounts.views import current_user
from marketpulse.api.pages import Cursor, Page, next_offset, offset_of
from marketpulse.delivery import core
from marketpulse.delivery.addresses import BadAddress, masked
from marketpulse.delivery.service import BadCode, ChannelNotInPlan, DeliveryService, NotFound
from marketpulse.delivery.tables import DestinationRow, NotificationRow

router = APIRouter(tags=["delivery"], responses=UNAUTHORIZED)

Channel = Literal["email", "telegram", "discord", "slack", "sms", "webhook", "push", "in_app", "apprise"]
Status = Literal["queued", "sent", "failed", "dead", "skipped"]
assert set(Channel.__args__) == set(core.CHANNELS)  # type: ignore[attr-defined]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such destination of yours"}}


def get_delivery(request: Request) -> DeliveryService:
    delivery: DeliveryService = request.app.state.runtime.services.delivery
    return delivery


def alerts_user(request: Request, principal: Principal = Depends(current_user)) -> Principal:
    """A signed-in user, or an API key with the `alerts` scope (or `read` to look, `trade` to change)."""
    needed = "read" if request.method in ("GET", "HEAD") else "trade"
    if not (principal.allows("alerts") or principal.allows(needed)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "scope", "message": "this API key lacks the 'alerts' scope", "scope": "alerts"})
    return principal


class NewDestination(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Channel
    address: str = Field("", max_length=2048, description="An email, a Telegram chat id, an E.164 phone number, a "
                         "webhook URL, a push subscription (JSON), an Apprise URL; ignored for in_app")


class Code(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=16)


class DestinationOut(BaseModel):
    id: str
    channel: str
    address: str
    state: str
    last_error: str | None
    created_at_ms: int
    verified_at_ms: int | None
    signing_secret: str | None = Field(None, description="Webhooks: the HMAC key, in the answer that created it only")


class Destinations(Page[DestinationOut]):
    pass


class NotificationOut(BaseModel):
    id: int
    owner_id: str
    rule_id: str | None
    event_key: str
    channel: str
    destination_id: str | None
    destination: str | None
    title: str | None
    status: str
    attempts: int
    provider: str | None
    error: str | None
    credits_charged: int
    created_at_ms: int
    updated_at_ms: int
    sent_at_ms: int | None
    next_attempt_at_ms: int | None
    text: str | None = None
    url: str | None = None
    read_at_ms: int | None = None


class Notifications(Page[NotificationOut]):
    total: int
    unread: int | None = Field(None, description="The caller's unread in-app notifications (null in the admin view)")


class MarkRead(BaseModel):
    """Either `ids` (the caller's in-app notifications) or `all: true` (every unread one)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] | None = Field(None, min_length=1, max_length=500)
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> MarkRead:
        if (self.ids is None) == (not self.all):
            raise ValueError("send either ids or all: true, not both or neither")
        return self


class Marked(BaseModel):
    marked: int = Field(description="How many were unread and are now read")


def _destination_json(row: DestinationRow, secret: str | None = None) -> DestinationOut:
    return DestinationOut(id=row.id, channel=row.channel, address=row.address, state=row.state,
                          last_error=row.last_error, created_at_ms=row.created_at_ms,
                          verified_at_ms=row.verified_at_ms, signing_secret=secret)


def _notification_json(row: NotificationRow, dests: dict[str, DestinationRow]) -> NotificationOut:
    dest = dests.get(row.destination_id or "")
    return NotificationOut(
        id=row.id, owner_id=row.owner_id, rule_id=row.rule_id, event_key=row.event_key, channel=row.channel,
        destination_id=row.destination_id, destination=masked(dest.channel, dest.address) if dest else None,
        title=(row.message or {}).get("title"), status=row.status, attempts=row.attempts, provider=row.provider,
        error=row.last_error, credits_charged=row.credits_charged, created_at_ms=row.created_at_ms,
        updated_at_ms=row.updated_at_ms, sent_at_ms=row.sent_at_ms,
        next_attempt_at_ms=row.next_attempt_at_ms if row.status in core.PENDING_STATUSES else None,
        text=(row.message or {}).get("text"), url=(row.message or {}).get("url"), read_at_ms=row.read_at_ms)


def _field_error(field: str, message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error", "input": value}])


@router.post("/api/v1/account/destinations", status_code=status.HTTP_201_CREATED, response_model=DestinationOut,
             responses={403: {"description": "The plan doesn't include this channel"}})
async def add_destination(body: NewDestination, principal: Principal = Depends(alerts_user),
                          delivery: DeliveryService = Depends(get_delivery)) -> DestinationOut:
    if body.channel != "in_app" and not body.address.strip():
        raise _field_error("address", "is required for this channel", body.address)
    try:
        added = await delivery.add(principal.user.id, principal.user.plan, body.channel, body.address)
    except BadAddress as exc:
        raise _field_error("address", str(exc), body.address) from None
    except ChannelNotInPlan as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "channel_not_in_plan", "field": "channel", "message": str(exc)}) from None
    return _destination_json(added.row, added.secret)


@router.post("/api/v1/account/destinations/{dest_id}/verify", response_model=DestinationOut, responses=NOT_FOUND)
async def verify_destination(dest_id: str, body: Code, principal: Principal = Depends(alerts_user),
                             delivery: DeliveryService = Depends(get_delivery)) -> DestinationOut:
    try:
        row = await delivery.verify(principal.user.id, dest_id, body.code)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such destination") from None
    except BadCode as exc:
        raise _field_error("code", str(exc)) from None
    return _destination_json(row)


@router.get("/api/v1/account/destinations", response_model=Destinations)
async def list_destinations(principal: Principal = Depends(alerts_user),
                            delivery: DeliveryService = Depends(get_delivery)) -> Destinations:
    return Destinations(data=[_destination_json(r) for r in await delivery.destinations(principal.user.id)])


@router.delete("/api/v1/account/destinations/{dest_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, responses=NOT_FOUND)
async def delete_destination(dest_id: str, principal: Principal = Depends(alerts_user),
                             delivery: DeliveryService = Depends(get_delivery)) -> Response:
    try:
        await delivery.remove(principal.user.id, dest_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such destination") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/v1/account/notifications", response_model=Notifications)
async def my_notifications(status_: Status | None = Query(None, alias="status"),
                           channel: Channel | None = Query(None, description="in_app: the notification centre's"),
                           unread: bool = Query(False, description="Only those not marked read"),
                           limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000),
                           cursor: Cursor = None, principal: Principal = Depends(alerts_user),
                           delivery: DeliveryService = Depends(get_delivery)) -> Notifications:
    user_id = principal.user.id
    offset = offset_of(offset, cursor)
    rows, total = await delivery.history(user_id, status_, limit=limit, offset=offset, channel=channel,
                                         unread=unread)
    dests = await delivery.destinations_named([r.destination_id for r in rows])
    return Notifications(data=[_notification_json(r, dests) for r in rows], next=next_offset(offset, len(rows), total),
                         total=total, unread=await delivery.unread_in_app(user_id))


@router.post("/api/v1/account/notifications/read", response_model=Marked,
             responses={404: {"description": "An id that isn't one of the caller's in-app notifications"}})
async def mark_notifications_read(body: MarkRead, principal: Principal = Depends(alerts_user),
                                  delivery: DeliveryService = Depends(get_delivery)) -> Marked:
    try:
        return Marked(marked=await delivery.mark_read(principal.user.id, None if body.all else body.ids))
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such notification") from None


@router.get("/api/v1/admin/notifications", response_model=Notifications, tags=["admin"])
async def all_notifications(status_: Status | None = Query(None, alias="status"),
                            limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000),
                            cursor: Cursor = None, _: Principal = Depends(require_admin),
                            delivery: DeliveryService = Depends(get_delivery)) -> Notifications:
    offset = offset_of(offset, cursor)
    rows, total = await delivery.history(None, status_, limit=limit, offset=offset)
    dests = await delivery.destinations_named([r.destination_id for r in rows])
    return Notifications(data=[_notification_json(r, dests) for r in rows], next=next_offset(offset, len(rows), total),
                         total=total)


@router.post("/api/v1/admin/notifications/{notification_id}/retry", response_model=NotificationOut, tags=["admin"],
             responses={404: {"description": "No such notification"},
                        409: {"description": "Not dead or skipped, or its destination is gone"}})
async def retry_notification(notification_id: int, request: Request, admin: Principal = Depends(require_admin),
                             delivery: DeliveryService = Depends(get_delivery)) -> NotificationOut:
    try:
        row = await delivery.retry(notification_id, actor_id=admin.user.id,
                                   client=request.client.host if request.client else None)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such notification") from None
    except BadCode as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return _notification_json(row, await delivery.destinations_named([row.destination_id]))
