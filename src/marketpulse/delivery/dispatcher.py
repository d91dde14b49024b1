"""Dispatchers: claim due notifications, send them through their channel's providers, write what became of them.

Any number run at once (every worker runs one). A claim is one UPDATE … RETURNING that leases up to
`PULSE_DELIVERY_BATCH_SIZE` due rows to this dispatcher until `now + PULSE_DELIVERY_LEASE_S`: on PostgreSQL the
rows are picked `FOR UPDATE SKIP LOCKED` and claims are serialised by a transaction-level advisory lock (so the
head-of-line check below sees every other claim); on SQLite the statement runs under the database's single
writer. A dispatcher killed mid-batch leaves its rows leased; once the lease expires another claims them.

Cadence: the first time a notification is claimed its cadence is decided (`delivery.cadence`: the owner's plan
batch, quiet hours and flood limit, on the dispatcher's clock). One held for a digest is handed back with
`digest_key` (its release time) and due then; the claim that takes one row of a destination's digest takes all of
them, and they go out as one message with one idempotency key (destination, release time), charged once. Owners
without an account (tests, benchmarks) are delivered at once.

Credits: before its first send a notification (or digest) is charged its channel's cost (`accounts.plans`), keyed by
its idempotency key; a balance too short makes it `skipped` with `insufficient_credits`, and the owner is told
in-app once until their balance is topped up again (the notice's event is the newest top-up in their ledger). A
notification that ends `dead` is refunded what it was charged (ledger kind `refund`, keyed by the same idempotency
key: once).

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

from marketpulse.accounts.plans import CHANNEL_CREDIT_COSTS, UnknownPlan, plan_named
from marketpulse.accounts.preferences import DEFAULT_FLOOD_LIMIT
from marketpulse.accounts.tables import NotificationPreferencesRow, UserRow
from marketpulse.bus import EventBus
from marketpulse.clock import Clock
from marketpulse.credits.core import Kind
from marketpulse.credits.service import CreditLedger
from marketpulse.credits.tables import CreditEntryRow
from marketpulse.delivery import cadence, core
from marketpulse.delivery.breaker import CircuitBreaker
from marketpulse.delivery.channels.base import Context, Delivery, Provider
from marketpulse.delivery.channels.registry import providers_for
from marketpulse.delivery.core import DEAD, FAILED, SENT, SKIPPED, DeliveryError, Outcome
from marketpulse.delivery.outbox import enqueue
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


@dataclass(frozen=True)
class Refund:
    owner_id: str
    key: str  # the charged idempotency key
    amount: int
    notification_id: int


@dataclass
class Result:
    id: int
    outcome: Outcome
    attempts: int
    owner_id: str = ""
    refund: Refund | None = None  # a dead notification's credits, given back when its outcome is written


INSUFFICIENT = "insufficient_credits"


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
    handed_back: int = 0  # rows the last claim held for a digest or dropped (their cadence decided)

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
        """Claim one batch, send it, write the outcomes; how many rows it claimed (those it held for a digest or
        dropped on first claim included)."""
        claimed = await self.claim()
        if not claimed:
            return self.handed_back
        results = await self._send_all(claimed)
        await self._write(results)
        return len(claimed) + self.handed_back

    # --- claiming ---------------------------------------------------------------------------------------------

    async def claim(self) -> list[Claimed]:
        """Lease due rows; the ones to send now (`handed_back` counts those held for a digest or dropped)."""
        now = self.clock.now_ms()
        self.handed_back = 0
        async with self.sessions.begin() as s:
            postgres = s.get_bind().dialect.name == "postgresql"
            if postgres:
                await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            ids = _due_ids(now, self.settings.delivery_batch_size, postgres)
            lease = {"claimed_by": self.name, "lease_expires_at_ms": now + int(self.settings.delivery_lease_s * 1000)}
            rows = list((await s.execute(
                update(NotificationRow).where(NotificationRow.id.in_(ids)).values(**lease)
                .returning(NotificationRow).execution_options(synchronize_session=False))).scalars().all())
            rows += await _rest_of_digests(s, rows, now, lease)
            if unplanned := [r for r in rows if r.planned_at_ms is None and r.attempts == 0]:
                handed_back = await _plan(s, unplanned, now)
                rows = [r for r in rows if r.id not in handed_back]
                self.handed_back = len(handed_back)
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
                units = _units(items)
                for i, unit in enumerate(units):
                    done = await self._attempt(unit)
                    results.extend(done)
                    if self.on_result is not None:
                        for result in done:
                            self.on_result(result)
                    if done[0].outcome.status == FAILED:  # keep the order: the rest wait for this one's retry
                        results.extend(Result(x.row.id, Outcome(status="release"), x.row.attempts)
                                       for rest in units[i + 1:] for x in rest)
                        return

        await asyncio.gather(*(one_destination(items) for items in groups.values()))
        return results

    async def _attempt(self, unit: list[Claimed]) -> list[Result]:
        """Send one notification, or one digest (a destination's notifications held for the same release time:
        one message, one idempotency key, one charge, recorded on its first row); every row gets the outcome."""
        lead = unit[0]
        row, dest = lead.row, lead.destination
        attempts = max(c.row.attempts for c in unit)

        def each(outcome: Outcome, tries: int, refund: Refund | None = None) -> list[Result]:
            return [Result(c.row.id, outcome, tries, row.owner_id, refund if c is lead else None) for c in unit]

        if dest is None or dest.state != "verified":
            return each(Outcome(status=SKIPPED, error="destination_removed", permanent=True), attempts)
        key = row.idempotency_key if row.digest_key is None else cadence.digest_idempotency_key(
            dest.id, row.digest_key)
        charged = await self._charge(row, key, len(unit))
        if charged is None:
            return each(Outcome(status=SKIPPED, error=INSUFFICIENT), attempts)
        message = row.message if row.digest_key is None else cadence.digest_message(
            [c.row.message for c in unit], int(row.digest_key))
        delivery = Delivery(notification_id=row.id, idempotency_key=key, owner_id=row.owner_id,
                            channel=row.channel, address=dest.address, secret=dest.signing_secret,
                            message=message, created_at_ms=row.created_at_ms)
        outcome, tried = await self._through_providers(delivery, self._providers.get(row.channel, []))
        if outcome is None:
            outcome, tries = self._retry_or_give_up(attempts, tried)
        else:
            tries = attempts + 1
        refund = Refund(row.owner_id, key, charged, row.id) if outcome.status == DEAD and charged else None
        return each(outcome, tries, refund)

    async def _charge(self, row: NotificationRow, key: str, count: int) -> int | None:
        """Take the channel's credits once per notification or digest (the ledger keys usage by its idempotency
        key, so a retry or a takeover never charges again): what it carries, None when the balance is short."""
        cost = CHANNEL_CREDIT_COSTS.get(row.channel, CHANNEL_CREDIT_COSTS["webhook"])  # apprise: as a webhook
        if row.credits_charged:
            return row.credits_charged
        if self.credits is None or cost == 0:
            return 0
        what = f"digest of {count}" if row.digest_key is not None else "notification"
        async with self.sessions.begin() as s:
            result = await self.credits.charge(s, owner_id=row.owner_id, amount=cost, idempotency_key=f"delivery:{key}",
                                               reason=f"{row.channel} {what} {row.id}")
            if result.insufficient:
                return None
            await s.execute(update(NotificationRow).where(NotificationRow.id == row.id).values(credits_charged=cost))
        row.credits_charged = cost
        return cost

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

    def _retry_or_give_up(self, attempts: int, tried: _Tried) -> tuple[Outcome, int]:
        now = self.clock.now_ms()
        if not tried.attempted:  # every circuit open: not an attempt; come back when one half-opens
            return Outcome(status=FAILED, error=tried.error, next_attempt_at_ms=tried.blocked_until or now + 1000), \
                attempts
        attempts += 1
        delay = self.schedule.next_delay_s(attempts, tried.retry_after_s)
        if delay is None:
            return Outcome(status=DEAD, error=tried.error), attempts
        return Outcome(status=FAILED, error=tried.error, next_attempt_at_ms=now + round(delay * 1000)), attempts

    # --- writing outcomes -------------------------------------------------------------------------------------

    async def _write(self, results: list[Result]) -> None:
        now = self.clock.now_ms()
        values = [_row_values(r, now) for r in results]
        permanent = [(r.id, r.outcome.error) for r in results if r.outcome.permanent and r.outcome.status == DEAD]
        refunds = [r.refund for r in results if r.refund is not None]
        short = sorted({r.owner_id for r in results if r.outcome.status == SKIPPED and r.outcome.error == INSUFFICIENT})
        async with self.sessions.begin() as s:
            if values:
                await s.execute(update(NotificationRow), values)
            for notification_id, error in permanent:
                await _show_on_destination(s, notification_id, error)
            for refund in refunds:
                await self._refund(s, refund)
            for owner_id in short:
                await tell_out_of_credits(s, owner_id, now, self.settings.public_url)

    async def _refund(self, s: AsyncSession, refund: Refund) -> None:
        """Give a dead notification's credits back (once: keyed by what was charged); its history then shows it
        cost nothing."""
        if self.credits is None:
            return
        await self.credits.refund(s, owner_id=refund.owner_id, amount=refund.amount,
                                  idempotency_key=f"refund:{refund.key}",
                                  reason=f"notification {refund.notification_id} not delivered")
        await s.execute(update(NotificationRow).where(NotificationRow.id == refund.notification_id)
                        .values(credits_charged=0))


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
    # A row held for a digest (queued, never tried) holds nothing up: later ones are claimed to be planned too.
    waiting_for_digest = (n.status == core.QUEUED) & n.digest_key.is_not(None) & (n.attempts == 0)
    held = (select(n.destination_id.label("destination_id"), func.min(n.id).label("first_held"))
            .where(n.status.in_(core.PENDING_STATUSES),
                   ((n.next_attempt_at_ms > now) & ~waiting_for_digest) | (n.lease_expires_at_ms > now))
            .group_by(n.destination_id).cte("held"))
    query = (select(n.id).outerjoin(held, held.c.destination_id == n.destination_id).where(
        n.status.in_(core.PENDING_STATUSES), n.next_attempt_at_ms <= now,
        (n.lease_expires_at_ms.is_(None)) | (n.lease_expires_at_ms <= now),
        (held.c.first_held.is_(None)) | (n.id < held.c.first_held))
        .order_by(n.id).limit(limit))
    return query.with_for_update(of=n, skip_locked=True) if postgres else query


def _units(items: list[Claimed]) -> list[list[Claimed]]:
    """A destination's claimed rows as sends, in order: each alone, or a digest's rows together (at its first)."""
    units: list[list[Claimed]] = []
    digests: dict[str, list[Claimed]] = {}
    for c in items:
        key = c.row.digest_key
        if key is None:
            units.append([c])
        elif key in digests:
            digests[key].append(c)
        else:
            digests[key] = [c]
            units.append(digests[key])
    return units


async def _rest_of_digests(s: AsyncSession, rows: list[NotificationRow], now: int,
                           lease: dict[str, Any]) -> list[NotificationRow]:
    """The due rows of every digest the claim took a row of (a digest goes out whole, whatever the batch size)."""
    n = NotificationRow
    taken = {r.id for r in rows}
    more: list[NotificationRow] = []
    for dest_id, key in {(r.destination_id, r.digest_key) for r in rows if r.digest_key and r.destination_id}:
        more += (await s.execute(update(n).where(
            n.destination_id == dest_id, n.digest_key == key, n.status.in_(core.PENDING_STATUSES),
            n.next_attempt_at_ms <= now, n.lease_expires_at_ms.is_(None) | (n.lease_expires_at_ms <= now),
            n.id.not_in(taken)).values(**lease).returning(n).execution_options(synchronize_session=False))).scalars()
    return more


async def _policies(s: AsyncSession, owners: set[str]) -> dict[str, cadence.Policy]:
    """Each owner's cadence policy (plan batch and preferences); owners without an account have none."""
    prefs = NotificationPreferencesRow
    found = await s.execute(select(UserRow.id, UserRow.plan, prefs.time_zone, prefs.quiet_hours_start,
                                   prefs.quiet_hours_end, prefs.quiet_hours_low_priority, prefs.flood_limit_per_minute)
                            .outerjoin(prefs, prefs.owner_id == UserRow.id).where(UserRow.id.in_(owners)))
    out: dict[str, cadence.Policy] = {}
    for user_id, plan, zone, start, end, low, flood in found:
        try:
            batch = plan_named(plan).alert_batch_minutes
        except UnknownPlan:
            batch = 0
        if zone is None:  # no preferences saved: the defaults
            out[user_id] = cadence.Policy(batch_minutes=batch, flood_limit_per_minute=DEFAULT_FLOOD_LIMIT)
        else:
            out[user_id] = cadence.Policy(batch, zone, start, end, low, flood)
    return out


async def _plan(s: AsyncSession, unplanned: list[NotificationRow], now: int) -> set[int]:
    """Decide the cadence of rows claimed for the first time; the ids handed back (held for a digest or dropped)."""
    unplanned = [r for r in unplanned if r.channel not in cadence.EXEMPT_CHANNELS]
    if not unplanned:
        return set()
    policies = await _policies(s, {r.owner_id for r in unplanned})
    if not policies:
        return set()
    n = NotificationRow
    counts: dict[str, int] = {owner: count for owner, count in (await s.execute(
        select(n.owner_id, func.count()).where(
            n.owner_id.in_(list(policies)), n.planned_at_ms >= cadence.window_start_ms(now), n.digest_key.is_(None),
            n.status != SKIPPED).group_by(n.owner_id))).all()}
    values: list[dict[str, Any]] = []
    handed_back: set[int] = set()
    for row in sorted(unplanned, key=lambda r: r.id):
        if (policy := policies.get(row.owner_id)) is None:
            continue
        priority = str((row.message or {}).get("priority") or "normal")
        decision = cadence.decide(policy, priority, now, counts.get(row.owner_id, 0))
        v = {"id": row.id, "planned_at_ms": now, "digest_key": None, "next_attempt_at_ms": row.next_attempt_at_ms,
             "claimed_by": row.claimed_by, "lease_expires_at_ms": row.lease_expires_at_ms, "status": row.status,
             "last_error": row.last_error, "updated_at_ms": row.updated_at_ms}
        if decision.kind == cadence.NOW:
            counts[row.owner_id] = counts.get(row.owner_id, 0) + 1
        elif decision.kind == cadence.HOLD:
            v |= {"digest_key": decision.digest_key, "next_attempt_at_ms": decision.release_ms, "claimed_by": None,
                  "lease_expires_at_ms": None}
            handed_back.add(row.id)
        else:
            v |= {"status": SKIPPED, "last_error": cadence.QUIET_HOURS, "claimed_by": None,
                  "lease_expires_at_ms": None, "updated_at_ms": now}
            handed_back.add(row.id)
        values.append(v)
    if values:
        await s.execute(update(NotificationRow), values)
    return handed_back


async def tell_out_of_credits(s: AsyncSession, owner_id: str, now: int, public_url: str) -> None:
    """Tell the owner in-app that notifications are being skipped for want of credits: once until their balance is
    topped up again (the notice's event is their newest grant, purchase or positive adjustment, so the outbox's
    unique key keeps it to one). Their in-app destination is made if they have none (in-app needs no address)."""
    e = CreditEntryRow
    topped_up = await s.scalar(select(func.max(e.id)).where(
        e.owner_id == owner_id, e.kind.in_([Kind.GRANT.value, Kind.PURCHASE.value])
        | ((e.kind == Kind.ADJUSTMENT.value) & (e.amount > 0))))
    dest_id = await s.scalar(select(DestinationRow.id).where(
        DestinationRow.owner_id == owner_id, DestinationRow.channel == "in_app", DestinationRow.state == "verified")
        .order_by(DestinationRow.created_at_ms, DestinationRow.id).limit(1))
    if dest_id is None:
        dest_id = str(uuid.uuid4())
        s.add(DestinationRow(id=dest_id, owner_id=owner_id, channel="in_app", address=owner_id, state="verified",
                             code_attempts=0, created_at_ms=now, verified_at_ms=now))
        await s.flush()
    await enqueue(s, owner_id=owner_id, rule_id=None, source="credits", event_key=f"{INSUFFICIENT}:{topped_up or 0}",
                  destination_ids=[dest_id], now_ms=now, message={
                      "title": "Out of credits", "kind": "credits", "priority": "high",
                      "url": f"{public_url.rstrip('/')}/pricing",
                      "text": "Your balance is too low for your alerts' channels: notifications that cost credits are "
                              "skipped until you top up (in-app ones still arrive)."})


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

