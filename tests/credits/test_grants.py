"""Monthly grants: each active user's plan credits on their renewal day, once per user and month, across month
boundaries on the injected clock; run by the worker holding the `credit-grants` lease."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from marketpulse.accounts.core import Status
from marketpulse.accounts.tables import UserRow
from marketpulse.clock import FakeClock
from marketpulse.coordination.lease import InProcessLeaseStore
from marketpulse.credits.grants import CHECK_EVERY_MS, GrantRunner, MonthlyGrants
from marketpulse.credits.tables import CreditEntryRow
from marketpulse.runtime import Runtime
from support.waiting import eventually

STRONG = "Correct-Horse-9-battery"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


async def keys_of(runtime: Runtime, user_id: str) -> list[str]:
    async with runtime.sessions() as s:
        rows = await s.execute(select(CreditEntryRow.idempotency_key, CreditEntryRow.amount).where(
            CreditEntryRow.owner_id == user_id).order_by(CreditEntryRow.id))
        return [f"{k}={a}" for k, a in rows.all()]


async def test_grants_fall_on_the_renewal_day_once_a_month(runtime: Runtime, clock: FakeClock) -> None:
    accounts = runtime.services.accounts
    clock.set(ms("2026-01-31T10:00:00"))
    free = await accounts.create_user("free@example.com", STRONG, verified=True)
    pro = await accounts.create_user("pro@example.com", STRONG, plan="pro", verified=True)
    gone = await accounts.create_user("gone@example.com", STRONG, verified=True)
    async with runtime.sessions() as s:
        (await s.get(UserRow, gone.id)).status = Status.SUSPENDED.value  # type: ignore[union-attr]
        await s.commit()
    grants = MonthlyGrants(runtime.sessions, clock, runtime.services.credits)
    assert await grants.grant_due() == 2  # the sign-up month's grant, at once
    assert await grants.grant_due() == 0  # checked again: nothing new
    clock.set(ms("2026-02-28T09:59:59"))
    assert await grants.grant_due() == 0
    clock.set(ms("2026-02-28T10:00:00"))  # no 31st in February: its last day
    assert await grants.grant_due() == 2
    clock.set(ms("2026-03-31T10:00:00"))
    assert await grants.grant_due() == 2
    assert await keys_of(runtime, free.id) == [f"grant:{free.id}:2026-0{m}=100" for m in (1, 2, 3)]
    assert await keys_of(runtime, pro.id) == [f"grant:{pro.id}:2026-0{m}=1000" for m in (1, 2, 3)]
    assert await keys_of(runtime, gone.id) == []


async def test_the_lease_holder_grants_and_a_second_worker_adds_nothing(runtime: Runtime, clock: FakeClock) -> None:
    clock.set(ms("2026-03-15T12:00:00"))
    user = await runtime.services.accounts.create_user("u@example.com", STRONG, verified=True)
    store = InProcessLeaseStore(clock)
    runners = [GrantRunner(MonthlyGrants(runtime.sessions, clock, runtime.services.credits), store,
                           ttl_ms=15_000, clock=clock) for _ in range(2)]
    for runner in runners:
        await runner.start()
    try:
        assert [r.lease.held for r in runners] == [True, False]
        await eventually(lambda: keys_of(runtime, user.id), what="the sign-up month's grant")
        await clock.parked(3)  # both keepers and the holder's grant loop wait for their next time
        clock.set(ms("2026-04-15T12:00:00") + CHECK_EVERY_MS)  # a check after the April renewal
        await eventually(lambda: _has(runtime, user.id, 2), what="April's grant")
        assert await keys_of(runtime, user.id) == [f"grant:{user.id}:2026-03=100", f"grant:{user.id}:2026-04=100"]
    finally:
        for runner in runners:
            await runner.stop()


async def _has(runtime: Runtime, user_id: str, count: int) -> bool:
    return len(await keys_of(runtime, user_id)) == count
