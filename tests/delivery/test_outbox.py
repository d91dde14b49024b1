"""The outbox contract the rules engine calls: one row per verified destination of the owner, inside the caller's
transaction, and the same event enqueued twice stays one notification."""

from __future__ import annotations

from sqlalchemy import func, select

from marketpulse.delivery.outbox import enqueue, idempotency_key
from marketpulse.delivery.tables import NotificationRow
from marketpulse.runtime import Runtime

from .helpers import add_destination


async def count(runtime: Runtime) -> int:
    async with runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(NotificationRow))).scalar_one())


async def test_one_row_per_verified_destination_of_the_owner(runtime: Runtime) -> None:
    await add_destination(runtime, "d-hook", "alice")
    await add_destination(runtime, "d-mail", "alice", channel="email", address="a@example.com")
    await add_destination(runtime, "d-pending", "alice", state="pending")
    await add_destination(runtime, "d-bob", "bob")
    async with runtime.sessions.begin() as s:
        await enqueue(s, owner_id="alice", rule_id="r1", event_key="BTCUSDT:1",
                      destination_ids=["d-hook", "d-mail", "d-pending", "d-bob", "d-none"],
                      message={"title": "BTC above 100k", "text": "BTCUSDT crossed 100,000"})
    async with runtime.sessions() as s:
        rows = list((await s.execute(select(NotificationRow).order_by(NotificationRow.id))).scalars())
    assert [(r.destination_id, r.channel, r.status, r.owner_id) for r in rows] == [
        ("d-hook", "webhook", "queued", "alice"), ("d-mail", "email", "queued", "alice")]
    assert rows[0].idempotency_key == idempotency_key("r1", "BTCUSDT:1", "d-hook")
    assert rows[0].message == {"title": "BTC above 100k", "text": "BTCUSDT crossed 100,000"}


async def test_the_same_event_twice_is_one_notification(runtime: Runtime) -> None:
    await add_destination(runtime, "d1", "alice")
    for _ in range(2):
        async with runtime.sessions.begin() as s:
            await enqueue(s, owner_id="alice", rule_id="r1", event_key="e1", destination_ids=["d1", "d1"],
                          message={"text": "x"})
    assert await count(runtime) == 1
    async with runtime.sessions.begin() as s:  # another event of the same rule is another notification
        await enqueue(s, owner_id="alice", rule_id="r1", event_key="e2", destination_ids=["d1"], message={})
    assert await count(runtime) == 2


async def test_a_rolled_back_match_leaves_no_notification(runtime: Runtime) -> None:
    await add_destination(runtime, "d1", "alice")
    async with runtime.sessions() as s:
        await enqueue(s, owner_id="alice", rule_id="r1", event_key="e1", destination_ids=["d1"], message={})
        await s.rollback()
    assert await count(runtime) == 0
