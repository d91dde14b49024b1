"""The ledger contract other capabilities call (`services.credits`): charge, grant, refund and balance inside the
caller's transaction; the balance is the ledger's sum, never below zero, also under many concurrent chargers; an
idempotency key never charges twice."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from marketpulse.credits.core import Kind
from marketpulse.credits.service import CreditLedger
from marketpulse.credits.tables import CreditEntryRow
from marketpulse.runtime import Runtime

OWNER = "user-1"


async def ledger_sum(runtime: Runtime, owner: str = OWNER) -> tuple[int, int]:
    async with runtime.sessions() as s:
        total = await s.scalar(select(func.coalesce(func.sum(CreditEntryRow.amount), 0)).where(
            CreditEntryRow.owner_id == owner))
        count = await s.scalar(select(func.count()).select_from(CreditEntryRow).where(
            CreditEntryRow.owner_id == owner))
    return int(total or 0), int(count or 0)


async def test_charge_grant_refund_and_the_balance_is_the_ledgers_sum(runtime: Runtime) -> None:
    ledger: CreditLedger = runtime.services.credits
    async with runtime.sessions() as s:
        assert await ledger.balance(s, OWNER) == 0
        granted = await ledger.grant(s, owner_id=OWNER, amount=10, idempotency_key="g1", reason="welcome")
        charged = await ledger.charge(s, owner_id=OWNER, amount=3, idempotency_key="d1", reason="email")
        again = await ledger.charge(s, owner_id=OWNER, amount=3, idempotency_key="d1", reason="email")
        short = await ledger.charge(s, owner_id=OWNER, amount=8, idempotency_key="d2", reason="sms")
        refunded = await ledger.refund(s, owner_id=OWNER, amount=3, idempotency_key="r1", reason="bounced")
        await s.commit()
    assert (granted.ok, granted.balance) == (True, 10)
    assert (charged.ok, charged.balance, charged.cost, charged.repeated) == (True, 7, 3, False)
    assert (again.ok, again.balance, again.repeated, again.entry_id) == (True, 7, True, charged.entry_id)
    assert (short.ok, short.insufficient, short.balance, short.cost) == (False, True, 7, 8)
    assert refunded.balance == 10
    assert await ledger_sum(runtime) == (10, 3)  # grant, usage, refund: the repeat and the refusal wrote nothing
    balance, rows, total = await ledger.history(OWNER, limit=10, offset=0)
    assert balance == 10 and total == 3
    assert [(r.kind, r.amount, r.balance_after) for r in rows] == [("refund", 3, 10), ("usage", -3, 7),
                                                                   ("grant", 10, 10)]


async def test_a_charge_is_part_of_the_callers_transaction(runtime: Runtime) -> None:
    ledger: CreditLedger = runtime.services.credits
    async with runtime.sessions() as s:
        await ledger.grant(s, owner_id=OWNER, amount=5, idempotency_key="g1", reason="welcome")
        await s.commit()
    async with runtime.sessions() as s:
        assert (await ledger.charge(s, owner_id=OWNER, amount=5, idempotency_key="d1", reason="sms")).ok
        await s.rollback()  # the caller's delivery failed: its charge goes with it
    async with runtime.sessions() as s:
        assert await ledger.balance(s, OWNER) == 5
        assert (await ledger.charge(s, owner_id=OWNER, amount=5, idempotency_key="d1", reason="sms")).ok
        await s.commit()
    assert await ledger_sum(runtime) == (0, 2)


async def test_adjustments_go_either_way_but_never_below_zero(runtime: Runtime) -> None:
    ledger: CreditLedger = runtime.services.credits
    async with runtime.sessions() as s:
        await ledger.grant(s, owner_id=OWNER, amount=4, idempotency_key="g1", reason="welcome")
        down = await ledger.grant(s, owner_id=OWNER, amount=-3, kind=Kind.ADJUSTMENT, idempotency_key="a1",
                                  reason="correction", actor_id="admin-1")
        too_far = await ledger.grant(s, owner_id=OWNER, amount=-2, kind=Kind.ADJUSTMENT, idempotency_key="a2",
                                     reason="correction")
        await s.commit()
    assert down.balance == 1 and not too_far.ok and too_far.balance == 1


async def test_the_database_refuses_a_negative_balance(runtime: Runtime) -> None:
    ledger: CreditLedger = runtime.services.credits
    async with runtime.sessions() as s:
        await ledger.grant(s, owner_id=OWNER, amount=1, idempotency_key="g1", reason="welcome")
        await s.commit()
    async with runtime.sessions() as s:
        with pytest.raises(IntegrityError):
            await s.execute(text("UPDATE credit_balances SET balance = -1 WHERE owner_id = :o"), {"o": OWNER})
        await s.rollback()


async def test_many_concurrent_chargers_never_overdraw_and_the_balance_is_exact(runtime: Runtime) -> None:
    """40 chargers at once, each on its own connection and transaction, 3 credits each against 100: exactly 33
    succeed, 1 credit is left, the ledger sums to it; and 10 chargers racing with one key charge once."""
    ledger: CreditLedger = runtime.services.credits
    async with runtime.sessions() as s:
        await ledger.grant(s, owner_id=OWNER, amount=100, idempotency_key="g1", reason="welcome")
        await s.commit()
    start = asyncio.Event()

    async def charger(key: str) -> bool:
        await start.wait()
        async with runtime.sessions() as s:
            result = await ledger.charge(s, owner_id=OWNER, amount=3, idempotency_key=key, reason="sms")
            assert result.balance >= 0
            await s.commit()
            return result.ok and not result.repeated

    tasks = [asyncio.create_task(charger(f"d{n}")) for n in range(40)]
    same_key = [asyncio.create_task(charger("one-delivery")) for _ in range(10)]
    start.set()
    results = await asyncio.gather(*tasks)
    repeats = await asyncio.gather(*same_key)
    assert sum(results) + sum(repeats) == 33  # ⌊100 / 3⌋
    assert sum(repeats) <= 1
    async with runtime.sessions() as s:
        assert await ledger.balance(s, OWNER) == 1
    total, count = await ledger_sum(runtime)
    assert total == 1 and count == 1 + 33
