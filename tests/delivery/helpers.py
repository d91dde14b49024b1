"""Rows and dispatchers for delivery tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from marketpulse.delivery.dispatcher import Dispatcher
from marketpulse.delivery.outbox import enqueue
from marketpulse.delivery.retry import RetrySchedule
from marketpulse.delivery.tables import DestinationRow, NotificationRow
from marketpulse.runtime import Runtime

SECRET = "whsec-test"
NO_JITTER = RetrySchedule(random=lambda: 0.0)


async def add_destination(runtime: Runtime, dest_id: str, owner: str, *, channel: str = "webhook",
                          state: str = "verified", address: str = "http://127.0.0.1:9/hook") -> None:
    async with runtime.sessions.begin() as s:
        s.add(DestinationRow(id=dest_id, owner_id=owner, channel=channel, address=address, state=state,
                             code_attempts=0, created_at_ms=1, signing_secret=SECRET))


async def notify(runtime: Runtime, owner: str, dest_ids: list[str], event: str, **message: Any) -> None:
    async with runtime.sessions.begin() as s:
        await enqueue(s, owner_id=owner, rule_id="rule-1", event_key=event, destination_ids=dest_ids,
                      message={"title": f"alert {event}", "text": "crossed", **message},
                      now_ms=runtime.clock.now_ms())


async def notifications(runtime: Runtime) -> list[NotificationRow]:
    async with runtime.sessions() as s:
        return list((await s.execute(select(NotificationRow).order_by(NotificationRow.id))).scalars())


async def destination(runtime: Runtime, dest_id: str) -> DestinationRow:
    async with runtime.sessions() as s:
        row = await s.get(DestinationRow, dest_id)
        assert row is not None
        return row


def dispatcher(runtime: Runtime, **kwargs: Any) -> Dispatcher:
    kwargs.setdefault("schedule", NO_JITTER)
    return Dispatcher(runtime.sessions, runtime.clock, runtime.settings, bus=runtime.bus, **kwargs)
