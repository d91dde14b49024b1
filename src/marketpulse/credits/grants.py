"""The monthly grant: each active user gets their plan's `monthly_credits` on their renewal day.

A singleton duty (`credit-grants` lease, like paper trading's runner): the worker holding the lease checks every
`CHECK_EVERY_MS` of the injected clock and grants what is due. Each grant is keyed `grant:{user}:{yyyy-mm}` of
the renewal period it opens (`core.current_period`), so a check repeated, a worker taking over, or two holders
overlapping for a moment grant each user once a month.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.core import Status
from marketpulse.accounts.plans import plan_named
from marketpulse.accounts.tables import UserRow
from marketpulse.clock import Clock
from marketpulse.coordination.lease import LeaseStore, PeriodicDuty
from marketpulse.credits.core import Kind, current_period, grant_key
from marketpulse.credits.service import CreditLedger

log = structlog.get_logger(__name__)

LEASE = "credit-grants"
CHECK_EVERY_MS = 15 * 60_000  # a renewal is granted within this of its time
BATCH = 500


class MonthlyGrants:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, ledger: CreditLedger) -> None:
        self.sessions = sessions
        self.clock = clock
        self.ledger = ledger

    async def grant_due(self) -> int:
        """Grant every renewal due by now that has not been granted; how many were granted now."""
        now = self.clock.now_ms()
        granted, after = 0, ""
        while True:
            async with self.sessions() as s:
                users = list((await s.execute(
                    select(UserRow.id, UserRow.plan, UserRow.created_at_ms)
                    .where(UserRow.status == Status.ACTIVE.value, UserRow.id > after)
                    .order_by(UserRow.id).limit(BATCH))).all())
            for user_id, plan, signed_up in users:
                granted += await self._grant(user_id, plan, signed_up, now)
            if len(users) < BATCH:
                return granted
            after = users[-1][0]

    async def _grant(self, user_id: str, plan: str, signed_up_ms: int, now: int) -> int:
        period = current_period(signed_up_ms, now)
        amount = plan_named(plan).monthly_credits
        if period is None or amount <= 0:
            return 0
        async with self.sessions() as s:
            result = await self.ledger.grant(s, owner_id=user_id, amount=amount,
                                             idempotency_key=grant_key(user_id, period), kind=Kind.GRANT,
                                             reason=f"monthly credits of the {plan} plan, {period}")
            await s.commit()
        if result.repeated:
            return 0
        log.info("monthly credits granted", user=user_id, period=period, amount=amount)
        return 1


class GrantRunner(PeriodicDuty):
    """Runs `MonthlyGrants` on the worker holding the `credit-grants` lease, every `CHECK_EVERY_MS`."""

    def __init__(self, grants: MonthlyGrants, leases: LeaseStore, *, ttl_ms: int, clock: Clock) -> None:
        super().__init__(leases, LEASE, grants.grant_due, every_ms=CHECK_EVERY_MS, ttl_ms=ttl_ms, clock=clock)
        self.grants = grants
