"""Destinations and notification history for the API: add a destination (a verification code goes out over its
channel), verify it, list and delete; a user's notifications; the admins' view of dead ones and their retry."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.audit import AuditLog
from marketpulse.accounts.plans import plan_named
from marketpulse.bus import EventBus
from marketpulse.clock import Clock
from marketpulse.delivery import addresses, core
from marketpulse.delivery.channels.base import Context, Delivery
from marketpulse.delivery.channels.registry import providers_for
from marketpulse.delivery.channels.webhook import post_json
from marketpulse.delivery.core import DeliveryError
from marketpulse.delivery.tables import DestinationRow, NotificationRow
from marketpulse.settings import Settings
from marketpulse.storage.database import page

if TYPE_CHECKING:
    from marketpulse.delivery.devreceivers import DevReceivers

CODE_TTL_MS = 30 * 60_000
CODE_ATTEMPTS = 5
PENDING, VERIFIED = "pending", "verified"


class ChannelNotInPlan(Exception):
    pass


class NotFound(Exception):
    pass


class BadCode(Exception):
    pass


@dataclass(frozen=True)
class Added:
    row: DestinationRow
    secret: str | None  # the webhook signing secret, shown this once


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class DeliveryService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings,
                 bus: EventBus | None = None) -> None:
        self.sessions, self.clock, self.settings, self.bus = sessions, clock, settings, bus
        self.dev_receivers: DevReceivers | None = None  # `pulse demo`'s Telegram and webhook receivers

    async def close(self) -> None:
        if self.dev_receivers is not None:
            await self.dev_receivers.stop()
            self.dev_receivers = None

    # --- destinations -----------------------------------------------------------------------------------------

    async def add(self, owner_id: str, plan: str, channel: str, address: str) -> Added:
        if not core.channel_allowed(channel, plan_named(plan).alert_channels):
            raise ChannelNotInPlan(f"the {plan} plan doesn't include the {channel} channel")
        address = owner_id if channel == "in_app" else addresses.normalise(channel, address)
        if channel in (*addresses.URL_CHANNELS, "push"):
            await self._check_reachable(channel, address)
        now = self.clock.now_ms()
        code = f"{secrets.randbelow(1_000_000):06d}"
        secret = f"whsec_{secrets.token_urlsafe(24)}" if channel == "webhook" else None
        row = DestinationRow(id=str(uuid.uuid4()), owner_id=owner_id, channel=channel, address=address,
                             state=VERIFIED if channel == "in_app" else PENDING, code_attempts=0, signing_secret=secret,
                             created_at_ms=now, verified_at_ms=now if channel == "in_app" else None,
                             code_hash=None if channel == "in_app" else _hash(code),
                             code_expires_at_ms=None if channel == "in_app" else now + CODE_TTL_MS)
        if channel != "in_app":
            row.last_error = await self._send_code(row, code)
        async with self.sessions.begin() as s:
            s.add(row)
        return Added(row, secret)

    async def _check_reachable(self, channel: str, address: str) -> None:
        from marketpulse.delivery.channels.push import parse_subscription
        from marketpulse.delivery.ssrf import UnsafeUrl, check_webhook_url

        url = str(parse_subscription(address)["endpoint"]) if channel == "push" else address
        try:
            await check_webhook_url(url, allow_private=self.settings.webhook_allow_private)
        except UnsafeUrl as exc:
            raise addresses.BadAddress(str(exc)) from None

    async def _send_code(self, row: DestinationRow, code: str) -> str | None:
        """Send the code over the destination's channel; the error when it could not go (the user sees it)."""
        async with httpx.AsyncClient(timeout=self.settings.delivery_timeout_s) as http:
            ctx = Context(settings=self.settings, http=http, bus=self.bus)
            now = self.clock.now_ms()
            key = f"verification-{row.id}"
            try:
                if row.channel == "webhook":
                    await post_json(ctx, row.address, {"type": "verification", "code": code}, row.signing_secret,
                                    now, key)
                else:
                    message = {"title": "Your marketpulse verification code", "kind": "verification",
                               "text": f"Your code is {code}. Enter it in marketpulse to confirm this {row.channel} "
                                       "destination."}
                    provider = providers_for(self.settings)[row.channel][0]
                    await provider.send(Delivery(0, key, row.owner_id, row.channel, row.address, row.signing_secret,
                                                 message, now), ctx, now)
            except DeliveryError as exc:
                return f"verification code not delivered: {exc}"
        return None

    async def verify(self, owner_id: str, dest_id: str, code: str) -> DestinationRow:
        now = self.clock.now_ms()
        async with self.sessions.begin() as s:
            row = await self._owned(s, owner_id, dest_id)
            if row.state == VERIFIED:
                return row
            if row.code_hash is None or (row.code_expires_at_ms or 0) < now or row.code_attempts >= CODE_ATTEMPTS:
                raise BadCode("this code has expired or was tried too often: add the destination again for a new "
                              "one")
            if secrets.compare_digest(_hash(code.strip()), row.code_hash):
                row.state, row.verified_at_ms, row.code_hash, row.last_error = VERIFIED, now, None, None
                return row
            row.code_attempts += 1  # committed as the block ends, before the refusal below
            left = CODE_ATTEMPTS - row.code_attempts
        raise BadCode(f"wrong code ({left} tries left)")

    async def destinations(self, owner_id: str) -> list[DestinationRow]:
        async with self.sessions() as s:
            return list((await s.execute(select(DestinationRow).where(DestinationRow.owner_id == owner_id)
                                         .order_by(DestinationRow.created_at_ms, DestinationRow.id))).scalars())

    async def remove(self, owner_id: str, dest_id: str) -> None:
        """Delete the destination; its notifications stay as history, the ones still queued are skipped."""
        now = self.clock.now_ms()
        async with self.sessions.begin() as s:
            await self._owned(s, owner_id, dest_id)
            await s.execute(update(NotificationRow).where(
                NotificationRow.destination_id == dest_id, NotificationRow.status.in_(core.PENDING_STATUSES))
                .values(status=core.SKIPPED, last_error="destination_removed", updated_at_ms=now))
            await s.execute(update(NotificationRow).where(NotificationRow.destination_id == dest_id)
                            .values(destination_id=None))
            await s.execute(delete(DestinationRow).where(DestinationRow.id == dest_id))

    @staticmethod
    async def _owned(s: AsyncSession, owner_id: str, dest_id: str) -> DestinationRow:
        row = await s.get(DestinationRow, dest_id)
        if row is None or row.owner_id != owner_id:
            raise NotFound(dest_id)
        return row

    # --- notifications ----------------------------------------------------------------------------------------

    async def history(self, owner_id: str | None, status: str | None, *, limit: int, offset: int,
                      channel: str | None = None, unread: bool = False) -> tuple[list[NotificationRow], int]:
        """Newest first; `owner_id` None: everyone's (the admin view). `unread`: only those not marked read."""
        where: list[ColumnElement[bool]] = []
        if owner_id is not None:
            where.append(NotificationRow.owner_id == owner_id)
        if status is not None:
            where.append(NotificationRow.status == status)
        if channel is not None:
            where.append(NotificationRow.channel == channel)
        if unread:
            where.append(NotificationRow.read_at_ms.is_(None))
        return await page(self.sessions, NotificationRow, where, [NotificationRow.id.desc()], limit=limit,
                          offset=offset)

    async def unread_in_app(self, owner_id: str) -> int:
        """The bell's count: the owner's in-app notifications delivered and not yet read."""
        async with self.sessions() as s:
            return int((await s.execute(select(func.count()).select_from(NotificationRow).where(
                *self._unread_in_app(owner_id)))).scalar_one())

    async def mark_read(self, owner_id: str, ids: Sequence[int] | None) -> int:
        """Mark the owner's in-app notifications read: `ids`, or every unread one (None). An id that isn't the
        owner's (or isn't in-app) raises NotFound and nothing is marked; ids already read count as done."""
        now = self.clock.now_ms()
        async with self.sessions.begin() as s:
            where = [NotificationRow.owner_id == owner_id, NotificationRow.channel == "in_app"]
            if ids is not None:
                wanted = set(ids)
                found = set((await s.execute(select(NotificationRow.id).where(
                    *where, NotificationRow.id.in_(wanted)))).scalars())
                if found != wanted:
                    raise NotFound(f"no such notification: {min(wanted - found)}")
                where.append(NotificationRow.id.in_(wanted))
            result = await s.execute(update(NotificationRow).where(*where, NotificationRow.read_at_ms.is_(None))
                                     .values(read_at_ms=now))
            return int(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _unread_in_app(owner_id: str) -> list[ColumnElement[bool]]:
        return [NotificationRow.owner_id == owner_id, NotificationRow.channel == "in_app",
                NotificationRow.status == "sent", NotificationRow.read_at_ms.is_(None)]

    async def destinations_named(self, ids: Sequence[str | None]) -> dict[str, DestinationRow]:
        wanted = {i for i in ids if i}
        if not wanted:
            return {}
        async with self.sessions() as s:
            rows = (await s.execute(select(DestinationRow).where(DestinationRow.id.in_(wanted)))).scalars()
            return {r.id: r for r in rows}

    async def retry(self, notification_id: int, *, actor_id: str, client: str | None) -> NotificationRow:
        """An admin sends a dead (or skipped) notification again: back in the outbox, due now, attempts reset;
        the audit log records it in the same transaction."""
        now = self.clock.now_ms()
        async with self.sessions.begin() as s:
            row = await s.get(NotificationRow, notification_id)
            if row is None:
                raise NotFound(str(notification_id))
            if row.status not in (core.DEAD, core.SKIPPED) or row.destination_id is None:
                raise BadCode(f"only a dead or skipped notification with its destination can be retried, this one "
                              f"is {row.status}")
            old_status = row.status
            row.status, row.attempts, row.next_attempt_at_ms, row.updated_at_ms = core.QUEUED, 0, 0, now
            row.claimed_by, row.lease_expires_at_ms = None, None
            s.add(AuditLog(self.sessions, self.clock).entry(
                "admin.notification_retried", actor_id=actor_id, target_type="notification",
                target_id=str(notification_id), old={"status": old_status}, new={"status": core.QUEUED},
                client=client))
            return row
