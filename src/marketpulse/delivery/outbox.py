"""The transactional outbox: what a match calls, inside its own transaction, to have notifications sent.

    await enqueue(session, owner_id=user_id, rule_id=rule.id, event_key="BTCUSDT:1767225600000",
                  destination_ids=rule.channels, message={"title": …, "text": …, "symbol": "BTCUSDT"})

One row per destination is added to the caller's session (nothing is committed here): the notification exists if
and only if the match's own rows do. The idempotency key (rule or source, event, destination) is unique, so
enqueueing the same event again (a redelivered bus message, a retried transaction, two workers matching the same
tick) adds nothing. Destinations that aren't the owner's or aren't verified are left out.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.delivery.tables import DestinationRow, NotificationRow

log = structlog.get_logger(__name__)

QUEUED = "queued"
DUE_AT_ONCE = 0  # next_attempt_at_ms of a new row: due whatever the dispatcher's clock reads


def idempotency_key(source: str, event_key: str, destination_id: str) -> str:
    """The key a receiver sees (`Idempotency-Key`): the same for every attempt of one notification."""
    return hashlib.sha256(f"{source}\x1f{event_key}\x1f{destination_id}".encode()).hexdigest()


async def enqueue(session: AsyncSession, *, owner_id: str, rule_id: str | None, event_key: str,
                  destination_ids: list[str], message: dict[str, Any], source: str = "rule",
                  now_ms: int | None = None) -> None:
    """Add one outbox row per verified destination of `owner_id` to the caller's transaction.

    `source` names what raised the event when there is no rule (e.g. "credits"); `now_ms` stamps the row (the
    caller's clock; the wall clock when omitted: the row is due at once either way)."""
    if not destination_ids:
        return
    found = (await session.execute(
        select(DestinationRow.id, DestinationRow.channel).where(
            DestinationRow.id.in_(destination_ids), DestinationRow.owner_id == owner_id,
            DestinationRow.state == "verified"))).all()
    channels = {row.id: row.channel for row in found}
    if missing := [d for d in destination_ids if d not in channels]:
        log.info("outbox: destinations left out (not the owner's or not verified)", owner=owner_id, missing=missing)
    stamp = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    origin = rule_id or source
    rows = [
        {"owner_id": owner_id, "rule_id": rule_id, "event_key": event_key,
         "idempotency_key": idempotency_key(origin, event_key, dest), "destination_id": dest,
         "channel": channels[dest], "message": message, "status": QUEUED, "attempts": 0,
         "next_attempt_at_ms": DUE_AT_ONCE, "credits_charged": 0, "created_at_ms": stamp, "updated_at_ms": stamp}
        for dest in dict.fromkeys(destination_ids) if dest in channels
    ]
    if rows:
        await session.execute(_insert_ignoring_duplicates(session).values(rows))


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(NotificationRow).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return sqlite.insert(NotificationRow).on_conflict_do_nothing(index_elements=["idempotency_key"])
