"""The credit ledger over the database: the contract other capabilities call, inside their own transaction.

    result = await services.credits.charge(session, owner_id=user_id, amount=5, idempotency_key=delivery_key,
                                           reason="sms delivery")
    if result.insufficient: …          # nothing was charged; result.balance and result.cost say why

Every write takes the owner's balance row first: an `INSERT … ON CONFLICT DO NOTHING` (which on SQLite takes the
database's write lock at once) and then `SELECT … FOR UPDATE` (PostgreSQL: the row lock, held to the caller's
commit). Writers of one owner are therefore serialized, so the idempotency check, the balance check and the update
that follow can't interleave with another charge: the balance never goes below zero, and a key never charges
twice (the ledger's unique (owner_id, idempotency_key) backs that up).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.clock import Clock
from marketpulse.credits.core import ChargeResult, Kind, signed_amount
from marketpulse.credits.tables import CreditBalanceRow, CreditEntryRow

MAX_REASON = 200


class CreditLedger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    async def charge(self, session: AsyncSession, *, owner_id: str, amount: int, idempotency_key: str,
                     reason: str) -> ChargeResult:
        """Take `amount` (≥ 0) credits as usage, unless the balance is short (then nothing is taken)."""
        if amount < 0:
            raise ValueError("a charge can't be negative: refund instead")
        if amount == 0:  # free channels: nothing to record
            return ChargeResult(True, await self.balance(session, owner_id), 0)
        return await self.apply(session, owner_id=owner_id, kind=Kind.USAGE, amount=amount,
                                idempotency_key=idempotency_key, reason=reason)

    async def grant(self, session: AsyncSession, *, owner_id: str, amount: int, idempotency_key: str,
                    reason: str, kind: Kind = Kind.GRANT, actor_id: str | None = None) -> ChargeResult:
        """Add credits (`grant`, `purchase`), or correct the balance either way (`adjustment`, signed)."""
        return await self.apply(session, owner_id=owner_id, kind=kind, amount=amount,
                                idempotency_key=idempotency_key, reason=reason, actor_id=actor_id)

    async def refund(self, session: AsyncSession, *, owner_id: str, amount: int, idempotency_key: str,
                     reason: str) -> ChargeResult:
        return await self.apply(session, owner_id=owner_id, kind=Kind.REFUND, amount=amount,
                                idempotency_key=idempotency_key, reason=reason)

    async def balance(self, session: AsyncSession, owner_id: str) -> int:
        found = await session.scalar(select(CreditBalanceRow.balance).where(CreditBalanceRow.owner_id == owner_id))
        return int(found or 0)

    async def apply(self, session: AsyncSession, *, owner_id: str, kind: Kind, amount: int, idempotency_key: str,
                    reason: str, actor_id: str | None = None) -> ChargeResult:
        """One ledger entry and the balance it leaves, in the caller's transaction (not committed here)."""
        delta = signed_amount(kind, amount)
        cost = max(0, -delta)
        balance = await self._lock_balance(session, owner_id)
        earlier = await session.scalar(select(CreditEntryRow.id).where(
            CreditEntryRow.owner_id == owner_id, CreditEntryRow.idempotency_key == idempotency_key))
        if earlier is not None:
            return ChargeResult(True, balance, cost, earlier, repeated=True)
        if balance + delta < 0:
            return ChargeResult(False, balance, cost)
        now = self.clock.now_ms()
        row = await session.get(CreditBalanceRow, owner_id)
        assert row is not None  # made by _lock_balance
        row.balance, row.updated_at_ms = balance + delta, now
        entry = CreditEntryRow(owner_id=owner_id, kind=kind.value, amount=delta, balance_after=balance + delta,
                               reason=reason[:MAX_REASON], idempotency_key=idempotency_key, actor_id=actor_id,
                               created_at_ms=now)
        session.add(entry)
        await session.flush()
        return ChargeResult(True, balance + delta, cost, entry.id)

    async def _lock_balance(self, session: AsyncSession, owner_id: str) -> int:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        await session.execute(insert(CreditBalanceRow).values(
            owner_id=owner_id, balance=0, updated_at_ms=self.clock.now_ms()).on_conflict_do_nothing())
        locked = await session.scalar(select(CreditBalanceRow.balance).where(
            CreditBalanceRow.owner_id == owner_id).with_for_update().execution_options(populate_existing=True))
        return int(locked or 0)

    async def history(self, owner_id: str, *, limit: int, offset: int) -> tuple[int, list[CreditEntryRow], int]:
        """The balance, one page of entries (newest first) and how many there are."""
        async with self.sessions() as s:
            balance = await self.balance(s, owner_id)
            total = await s.scalar(select(func.count()).select_from(CreditEntryRow).where(
                CreditEntryRow.owner_id == owner_id))
            rows = await s.execute(select(CreditEntryRow).where(CreditEntryRow.owner_id == owner_id).order_by(
                CreditEntryRow.id.desc()).limit(limit).offset(offset))
            return balance, list(rows.scalars()), int(total or 0)


def entry_json(row: CreditEntryRow) -> dict[str, object]:
    return {"id": row.id, "kind": row.kind, "amount": row.amount, "balance_after": row.balance_after,
            "reason": row.reason, "created_at_ms": row.created_at_ms}
