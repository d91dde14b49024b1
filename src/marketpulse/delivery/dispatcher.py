"""Dispatchers: claim due notifications, send them through their channel's providers, write what became of them.

Any number run at once (every worker runs one). A claim is one UPDATE … RETURNING that leases up to
`PULSE_DELIVERY_BATCH_SIZE` due rows to this dispatcher until `now + PULSE_DELIVERY_LEASE_S`: on PostgreSQL the
rows are picked `FOR UPDATE SKIP LOCKED` and claims are serialised by a transaction-level advisory lock (so the
head-of-line check below sees every other claim); on SQLite the statement runs under the database's single
writer. A dispatcher killed mid-batch leaves its rows leased; once the lease expires another claims them.

Credits: before its first send a notification is charged its channel's cost (`accounts.plans`), keyed by its
idempotency key; a balance too short makes it `skipped` with `insufficient_credits`.

Order: a user's notifications on one destination arrive in the order they were enqueued. A row is claimable only
when no earlier pending row of its destination is leased to someone else or waiting for a retry; a dispatcher sends
one destination's rows one after another, and when one fails (to be retried) it hands the rest back.

What a crash can repeat: the rows of the batch in flight whose outcome wasn't written yet are sent again by the
next dispatcher, with the same `Idempotency-Key` (webhook header, mail Message-ID), so the receiver sees each
notification once. Nothing is lost: a row leaves the outbox only when its outcome is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from sqlalchemy import Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import CHANNEL_CREDIT_COSTS
from marketpulse.bus import EventBus
from marketpulse.clock import Clock
from marketpulse.credits.service import CreditLedger
from marketpulse.delivery import core
from marketpulse.delivery.breaker import CircuitBreaker
from marketpulse.delivery.channels.base import Context, Delivery, Provider
from marketpulse.delivery.channels.registry import providers_for
from marketpulse.delivery.core import DEAD, FAILED, SENT, SKIPPED, DeliveryError, Outcome
from marketpulse.delivery.retry import RetrySchedule
from marketpulse.delivery.tables import DestinationRow, NotificationRow
from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

CLAIM_LOCK = 0x6D70_6476  # "mpdv": the advisory lock that serialises claims on PostgreSQL
IDLE_POLL_S = 0.05  # an idle dispatcher looks for due rows this often (instant delivery: well under 200 ms)
CONCURRENCY = 64  # destinations sent to at once within a batch


@dataclass
class Claimed:
    row: NotificationRow
    destination: DestinationRow | None


@dataclass
class Result:
    id: int
    outcome: Outcome
    attempts: int


@dataclass
class Dispatcher:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    settings: Settings
    bus: EventBus | None = None
    providers: Mapping[str, list[Provider]] | None = None
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    http: httpx.AsyncClient | None = None
    on_result: Callable[[Result], None] | None = None  # tests and the benchmark watch outcomes
    credits: CreditLedger | None = None  # None: deliveries are free (tests of sending alone)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._providers = self.providers if self.providers is not None else providers_for(self.settings)
        self._own_http = self.http is None
        self._ctx = Context(settings=self.settings, bus=self.bus, http=self.http or httpx.AsyncClient(
            timeout=self.settings.delivery_timeout_s, limits=httpx.Limits(max_connections=CONCURRENCY)))

    def breaker(self, provider: str) -> CircuitBreaker:
        if provider not in self.breakers:
            self.breakers[provider] = CircuitBreaker(threshold=self.settings.delivery_breaker_failures,
                                                     open_ms=int(self.settings.delivery_breaker_open_s * 1000))
        return self.breakers[provider]

    async def close(self) -> None:
        if self._own_http:
            await self._ctx.http.aclose()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Dispatch until cancelled (or `stop` is set); a failing database is logged and retried."""
        while stop is None or not stop.is_set():
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch round failed; retrying")
                done = 0
            if not done:
                await asyncio.sleep(IDLE_POLL_S)

    async def run_once(self) -> int:
        """Claim one batch, send it, write the outcomes; how many rows it claimed."""
        claimed = await self.claim()
        if not claimed:
            return 0
        results = await self._send_all(claimed)
        await self._write(results)
        return len(claimed)

    # --- claiming ---------------------------------------------------------------------------------------------

    async def claim(self) -> list[Claimed]:
        now = self.clock.now_ms()
        async with self.sessions.begin() as s:
            postgres = s.get_bind().dialect.name == "postgresql"
            if postgres:
                await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            ids = _due_ids(now, self.settings.delivery_batch_size, postgres)
            rows = (await s.execute(
                update(NotificationRow).where(NotificationRow.id.in_(ids))
                .values(claimed_by=self.name, lease_expires_at_ms=now + int(self.settings.delivery_lease_s * 1000))
                .returning(NotificationRow).execution_options(synchronize_session=False))).scalars().all()
            dest_ids = {r.destination_id for r in rows if r.destination_id}
            dests = {d.id: d for d in (await s.execute(
                select(DestinationRow).where(DestinationRow.id.in_(dest_ids)))).scalars()} if dest_ids else {}
        return [Claimed(r, dests.get(r.destination_id or "")) for r in sorted(rows, key=lambda r: r.id)]

    # --- sending ----------------------------------------------------------------------------------------------

    async def _send_all(self, claimed: list[Claimed]) -> list[Result]:
        groups: dict[str, list[Claimed]] = {}
        for c in claimed:
            groups.setdefault(c.row.destination_id or f"gone-{c.row.id}", []).append(c)
        gate = asyncio.Semaphore(CONCURRENCY)
        results: list[Result] = []

        async def one_destination(items: list[Claimed]) -> None:
            async with gate:
                for i, c in enumerate(items):
                    result = await self._attempt(c)
                    results.append(result)
                    if self.on_result is not None:
                        self.on_result(result)
                    if result.outcome.status == FAILED:  # keep the order: the rest wait for this one's retry
                        results.extend(Result(x.row.id, Outcome(status="release"), x.row.attempts)
                                       for x in items[i + 1:])
                        return

        await asyncio.gather(*(one_destination(items) for items in groups.values()))
        return results

    async def _attempt(self, c: Claimed) -> Result:
        row, dest = c.row, c.destination
        if dest is None or dest.state != "verified":
            return Result(row.id, Outcome(status=SKIPPED, error="destination_removed", permanent=True), row.attempts)
        if not await self._charge(row):
            return Result(row.id, Outcome(status=SKIPPED, error="insufficient_credits"), row.attempts)
        delivery = Delivery(notification_id=row.id, idempotency_key=row.idempotency_key, owner_id=row.owner_id,
                            channel=row.channel, address=dest.address, secret=dest.signing_secret,
                            message=row.message, created_at_ms=row.created_at_ms)
        outcome, tried = await self._through_providers(delivery, self._providers.get(row.channel, []))
        if outcome is not None:
            return Result(row.id, outcome, row.attempts + 1)
        return self._retry_or_give_up(row, tried)

    async def _charge(self, row: NotificationRow) -> bool:
        """Take the channel's credits once per notification (the ledger keys usage by the notification's
        idempotency key, so a retry or a takeover never charges again); False when the balance is short."""
        cost = CHANNEL_CREDIT_COSTS.get(row.channel, CHANNEL_CREDIT_COSTS["webhook"])  # apprise: as a webhook
        if self.credits is None or cost == 0 or row.credits_charged:
            return True
        async with self.sessions.begin() as s:
            result = await self.credits.charge(s, owner_id=row.owner_id, amount=cost,
                                               idempotency_key=f"delivery:{row.idempotency_key}",
                                               reason=f"{row.channel} notification {row.id}")
            if result.insufficient:
                return False
            await s.execute(update(NotificationRow).where(NotificationRow.id == row.id).values(credits_charged=cost))
        row.credits_charged = cost
        return True

    async def _through_providers(self, delivery: Delivery,
                                 providers: list[Provider]) -> tuple[Outcome | None, _Tried]:
        """The first provider whose circuit lets it (the primary, or a fallback while the primary's circuit is open);
        the outcome when it answered for good, None (and why) when the attempt is to be retried."""
        tried = _Tried()
        for provider in providers:
            now = self.clock.now_ms()
            breaker = self.breaker(provider.name)
            if not breaker.allows(now):
                tried.blocked_until = min(tried.blocked_until or breaker.reopens_at_ms(), breaker.reopens_at_ms())
                tried.error = tried.error or f"{provider.name}: circuit open"
                continue
            try:
                await asyncio.wait_for(provider.send(delivery, self._ctx, now),
                                       self.settings.delivery_timeout_s + 1)
            except (DeliveryError, TimeoutError) as exc:
                err = exc if isinstance(exc, DeliveryError) else DeliveryError("timed out")
                if err.permanent:  # the provider answered: it is healthy, the address is not
                    breaker.success()
                    return Outcome(status=DEAD, provider=provider.name, error=f"{provider.name}: {err}",
                                   permanent=True), tried
                breaker.failure(self.clock.now_ms())
                tried.attempted, tried.error, tried.retry_after_s = True, f"{provider.name}: {err}", err.retry_after_s
                return None, tried  # retried later on the same provider; a fallback takes over once its circuit opens
            breaker.success()
            return Outcome(status=SENT, provider=provider.name), tried
        if not providers:
            return Outcome(status=DEAD, error=f"no provider for channel {delivery.channel}", permanent=True), tried
        return None, tried

    def _retry_or_give_up(self, row: NotificationRow, tried: _Tried) -> Result:
        now = self.clock.now_ms()
        if not tried.attempted:  # every circuit open: not an attempt; come back when one half-opens
            return Result(row.id, Outcome(status=FAILED, error=tried.error,
                                          next_attempt_at_ms=tried.blocked_until or now + 1000), row.attempts)
        attempts = row.attempts + 1
        delay = self.schedule.next_delay_s(attempts, tried.retry_after_s)
        if delay is None:
            return Result(row.id, Outcome(status=DEAD, error=tried.error), attempts)
        return Result(row.id, Outcome(status=FAILED, error=tried.error, next_attempt_at_ms=now + round(delay * 1000)),
                      attempts)

    # --- writing outcomes -------------------------------------------------------------------------------------

    async def _write(self, results: list[Result]) -> None:
        now = self.clock.now_ms()
        values = [_row_values(r, now) for r in results]
        permanent = [(r.id, r.outcome.error) for r in results if r.outcome.permanent and r.outcome.status == DEAD]
        async with self.sessions.begin() as s:
            if values:
                await s.execute(update(NotificationRow), values)
            for notification_id, error in permanent:
                await _show_on_destination(s, notification_id, error)


@dataclass
class _Tried:
    attempted: bool = False
    error: str | None = None
    retry_after_s: float | None = None
    blocked_until: int | None = None


def _due_ids(now: int, limit: int, postgres: bool) -> Select[Any]:
    """The ids a claim may take: due, not leased (or the lease expired), and before the first held-up row of
    their destination (one leased to a dispatcher or waiting for its retry); oldest first. Held-up rows are found
    once per claim (grouped by destination), so a claim costs O(pending rows), not O(pending × per destination)."""
    n = NotificationRow
    held = (select(n.destination_id.label("destination_id"), func.min(n.id).label("first_held"))
            .where(n.status.in_(core.PENDING_STATUSES),
                   (n.next_attempt_at_ms > now) | (n.lease_expires_at_ms > now))
            .group_by(n.destination_id).cte("held"))
    query = (select(n.id).outerjoin(held, held.c.destination_id == n.destination_id).where(
        n.status.in_(core.PENDING_STATUSES), n.next_attempt_at_ms <= now,
        (n.lease_expires_at_ms.is_(None)) | (n.lease_expires_at_ms <= now),
        (held.c.first_held.is_(None)) | (n.id < held.c.first_held))
        .order_by(n.id).limit(limit))
    return query.with_for_update(of=n, skip_locked=True) if postgres else query


def _row_values(r: Result, now: int) -> dict[str, Any]:
    o = r.outcome
    base: dict[str, Any] = {"id": r.id, "claimed_by": None, "lease_expires_at_ms": None, "updated_at_ms": now}
    if o.status == "release":  # handed back untouched, to keep the destination's order
        return {**base, "status": core.QUEUED if r.attempts == 0 else FAILED, "attempts": r.attempts,
                "next_attempt_at_ms": 0 if r.attempts == 0 else now, "provider": None, "last_error": None,
                "sent_at_ms": None}
    return {**base, "status": o.status, "attempts": r.attempts,
            "next_attempt_at_ms": o.next_attempt_at_ms if o.next_attempt_at_ms is not None else now,
            "provider": o.provider, "last_error": o.error, "sent_at_ms": now if o.status == SENT else None}


async def _show_on_destination(s: AsyncSession, notification_id: int, error: str | None) -> None:
    """A permanent refusal (invalid chat id, unsubscribed number) is the destination's problem: shown there."""
    dest_id = (await s.execute(select(NotificationRow.destination_id)
                               .where(NotificationRow.id == notification_id))).scalar_one_or_none()
    if dest_id is not None:
        await s.execute(update(DestinationRow).where(DestinationRow.id == dest_id).values(last_error=error))


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher) -> Any:
    """Run a dispatcher in the background for the block's duration (tests, `pulse worker`)."""
    task = asyncio.create_task(dispatcher.run(), name=f"dispatcher-{dispatcher.name}")
    try:
        yield dispatcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await dispatcher.close()

