"""Metered API calls: counted per user and month, the excess over the plan's included quota reported to Stripe.

Counting (every API process): the rate-limit middleware calls `count(user)` for each counted `/api/` request of a
signed-in caller; counts gather in memory and are added to `api_usage` (an upsert adding to the month's `calls`)
at most every `PULSE_API_USAGE_FLUSH_S` and when the process stops, so any number of API processes share one
count without a write per request. A process killed outright loses at most its last interval's calls (they go
unbilled, never billed twice).

Reporting (one process: the holder of the `api-metering` lease, a `PeriodicDuty` every
`PULSE_API_METER_REPORT_S`): `prepare` writes, in one transaction, a `MeterReportRow` per metered user whose
excess grew since their last report (the excess calls (start, end], identifier `api:{user}:{month}:{start}-{end}`,
its timestamp fixed); `send_unsent` then posts each unsent row to Stripe (`POST /v1/billing/meter_events`, the
same identifier, timestamp and Idempotency-Key every time) and marks it sent. A holder that dies between the two,
or half-way through sending, leaves rows unsent: the next holder sends them again, and Stripe counts an identifier
once. (owner, month, start) is unique, so two holders overlapping for a moment can't report the same calls twice.

Who is metered: a plan with `metered_api_calls` (pro, elite) and a card subscription Stripe still invoices
(active, trialing, past_due). Those callers' daily window no longer refuses (the per-minute one still does); every
other plan keeps its daily window as a hard limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import stripe
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import Plan, plan_named
from marketpulse.accounts.tables import UserRow
from marketpulse.clock import Clock
from marketpulse.payments import core
from marketpulse.payments.stripe_client import StripeGateway
from marketpulse.payments.tables import ApiUsageRow, MeterReportRow, StripeCustomerRow, StripeSubscriptionRow
from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

METER_LEASE = "api-metering"
BATCH = 500  # reports prepared (and sent) per step; the rest wait for the next
FLUSH_ROWS = 500  # users' counts per upsert statement
METERED_CACHE_MS = 30_000  # how long "is this user metered" is remembered per API process


class ApiMetering:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings,
                 gateway: StripeGateway) -> None:
        self.sessions, self.clock, self.settings, self.gateway = sessions, clock, settings, gateway
        self._pending: Counter[tuple[str, str]] = Counter()
        self._last_flush_ms = clock.now_ms()
        self._flushing = asyncio.Lock()
        self._metered: dict[str, tuple[bool, int]] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._month: tuple[int, int, str] = (0, 0, "")  # [start, end) of the month counted in, and its name

    # --- counting (every API process) ---

    def count(self, owner_id: str, calls: int = 1) -> None:
        """One API call (on every counted request: the month is worked out once per month, not per call)."""
        now = self.clock.now_ms()
        if not self._month[0] <= now < self._month[1]:
            self._month = (*core.period_bounds(now), core.usage_period(now))
        self._pending[(owner_id, self._month[2])] += calls

    def maybe_flush(self) -> None:
        """Start a flush in the background when the last one is older than `PULSE_API_USAGE_FLUSH_S` (called on
        each counted request, which doesn't wait for it)."""
        if self.clock.now_ms() - self._last_flush_ms >= self.settings.api_usage_flush_s * 1000 and \
                not self._flushing.locked() and (self._flush_task is None or self._flush_task.done()):
            self._last_flush_ms = self.clock.now_ms()
            self._flush_task = asyncio.create_task(self._flush_logged(), name="api-usage-flush")

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception:  # the counts stay pending for the next flush
            log.warning("api usage flush failed; kept for the next one", exc_info=True)

    async def flush(self) -> int:
        """Add the calls counted here since the last flush to `api_usage`; how many calls were written."""
        async with self._flushing:
            self._last_flush_ms = self.clock.now_ms()
            pending, self._pending = self._pending, Counter()
            if not pending:
                return 0
            try:
                async with self.sessions() as s:
                    dialect = s.get_bind().dialect.name
                    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
                    rows = [{"owner_id": owner_id, "period": period, "calls": calls,
                             "updated_at_ms": self._last_flush_ms}
                            for (owner_id, period), calls in sorted(pending.items())]
                    for i in range(0, len(rows), FLUSH_ROWS):  # multi-row upserts (sorted: one lock order)
                        stmt = insert(ApiUsageRow).values(rows[i:i + FLUSH_ROWS])
                        await s.execute(stmt.on_conflict_do_update(
                            index_elements=["owner_id", "period"],
                            set_={"calls": ApiUsageRow.calls + stmt.excluded.calls,
                                  "updated_at_ms": stmt.excluded.updated_at_ms}))
                    await s.commit()
            except Exception:
                self._pending.update(pending)  # kept for the next flush
                raise
            return sum(pending.values())

    async def calls(self, owner_id: str, period: str | None = None) -> int:
        """The user's API calls stored for the month (now's by default)."""
        async with self.sessions() as s:
            found = await s.scalar(select(ApiUsageRow.calls).where(
                ApiUsageRow.owner_id == owner_id,
                ApiUsageRow.period == (period or core.usage_period(self.clock.now_ms()))))
        return int(found or 0)

    async def metered(self, owner_id: str, plan: Plan) -> bool:
        """Whether the user's calls past the quota are billed (so their daily window doesn't refuse)."""
        if not plan.metered_api_calls:
            return False
        now = self.clock.now_ms()
        cached = self._metered.get(owner_id)
        if cached is not None and now - cached[1] < METERED_CACHE_MS:
            return cached[0]
        async with self.sessions() as s:
            live = await s.scalar(select(StripeSubscriptionRow.subscription_id).where(
                StripeSubscriptionRow.owner_id == owner_id,
                StripeSubscriptionRow.status.in_(core.METERING_STATUSES),
                StripeSubscriptionRow.dropped_at_ms.is_(None)).limit(1))
        if len(self._metered) > 100_000:
            self._metered.clear()
        self._metered[owner_id] = (live is not None, now)
        return live is not None

    def forget(self, owner_id: str) -> None:
        """Drop the cached answer (a subscription changed)."""
        self._metered.pop(owner_id, None)

    # --- reporting (the lease holder) ---

    async def report(self) -> int:
        """The duty's step: prepare the reports now due, then send every unsent one; how many were sent."""
        if not self.gateway.configured:
            return 0
        await self.prepare()
        return await self.send_unsent()

    async def prepare(self) -> int:
        """Write one report per metered user whose excess grew since their last report (this month and last, so
        calls flushed just after a month ends are billed too); how many were written."""
        now = self.clock.now_ms()
        periods = [core.previous_period(now), core.usage_period(now)]
        reported = (select(MeterReportRow.owner_id, MeterReportRow.period,
                           func.max(MeterReportRow.end_calls).label("end"))
                    .group_by(MeterReportRow.owner_id, MeterReportRow.period).subquery())
        async with self.sessions() as s:
            rows = (await s.execute(
                select(ApiUsageRow.owner_id, ApiUsageRow.period, ApiUsageRow.calls, UserRow.plan,
                       StripeCustomerRow.customer_id, reported.c.end)
                .join(UserRow, UserRow.id == ApiUsageRow.owner_id)
                .join(StripeCustomerRow, StripeCustomerRow.owner_id == ApiUsageRow.owner_id)
                .outerjoin(reported, (reported.c.owner_id == ApiUsageRow.owner_id)
                           & (reported.c.period == ApiUsageRow.period))
                .where(ApiUsageRow.period.in_(periods))
                .order_by(ApiUsageRow.owner_id, ApiUsageRow.period))).all()
            live = set((await s.execute(select(StripeSubscriptionRow.owner_id).where(
                StripeSubscriptionRow.owner_id.in_({r[0] for r in rows}),
                StripeSubscriptionRow.status.in_(core.METERING_STATUSES),
                StripeSubscriptionRow.dropped_at_ms.is_(None)))).scalars()) if rows else set()
            made = 0
            for owner_id, period, calls, plan_name, customer_id, end in rows:
                plan = plan_named(plan_name)
                if not plan.metered_api_calls or owner_id not in live:
                    continue
                start, excess = int(end or 0), core.excess_calls(int(calls), plan.api_calls_included_per_month)
                if excess <= start:
                    continue
                s.add(MeterReportRow(identifier=core.meter_identifier(owner_id, period, start, excess),
                                     owner_id=owner_id, period=period, customer_id=customer_id, start_calls=start,
                                     end_calls=excess, timestamp_s=now // 1000, created_at_ms=now))
                made += 1
                if made >= BATCH:
                    break
            try:
                await s.commit()
            except IntegrityError:  # another holder, overlapping for a moment, wrote them: it sends them too
                await s.rollback()
                return 0
        return made

    async def send_unsent(self) -> int:
        """Send every report Stripe hasn't acknowledged yet (oldest first); stops at the first failure (the next
        step sends the rest). How many were sent."""
        async with self.sessions() as s:
            rows = list((await s.execute(select(MeterReportRow).where(MeterReportRow.sent_at_ms.is_(None))
                                         .order_by(MeterReportRow.created_at_ms, MeterReportRow.identifier)
                                         .limit(BATCH))).scalars())
        sent = 0
        for row in rows:
            try:
                await self.gateway.meter_event(
                    event_name=self.settings.stripe_meter_event_name, customer_id=row.customer_id,
                    value=row.end_calls - row.start_calls, identifier=row.identifier, timestamp_s=row.timestamp_s)
            except stripe.StripeError as exc:
                log.warning("meter event not sent; retrying at the next step", identifier=row.identifier,
                            error=type(exc).__name__)
                break
            async with self.sessions() as s:
                await s.execute(update(MeterReportRow).where(MeterReportRow.identifier == row.identifier)
                                .values(sent_at_ms=self.clock.now_ms()))
                await s.commit()
            sent += 1
        if sent:
            log.info("api usage reported to Stripe", events=sent)
        return sent
