"""Payments over the database and Stripe: Checkout, the Customer Portal, the subscription's state, and webhooks.

A webhook event is verified (`core.verify_signature`), then applied in ONE transaction together with its
`stripe_events` row: a repeat of the event id finds the row and changes nothing, and two deliveries racing each
other can't both commit (the id is the primary key; the loser rolls back whole). Plan changes go through
`AccountsService.change_user` (audit log) and are announced after the commit (the user's live connections move).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import DEFAULT_PLAN, stripe_prices
from marketpulse.accounts.service import AccountsService
from marketpulse.accounts.tables import UserRow
from marketpulse.clock import Clock
from marketpulse.credits.core import Kind
from marketpulse.credits.service import CreditLedger
from marketpulse.onchain.tables import UsdtPlanTermRow
from marketpulse.payments import core, debt
from marketpulse.payments.stripe_client import StripeGateway
from marketpulse.payments.tables import (
    CreditPurchaseRow,
    StripeCustomerRow,
    StripeEventRow,
    StripeInvoiceRow,
    StripeSubscriptionRow,
)
from marketpulse.settings import Settings
from marketpulse.times import utc_text

if TYPE_CHECKING:
    from marketpulse.payments.devstripe import FakeStripe

log = structlog.get_logger(__name__)

GRACE_CHECK_EVERY_MS = 60_000
GRACE_LEASE = "payments-grace"
ENDED = ("canceled", "unpaid", "incomplete_expired")


class UnknownProduct(ValueError):
    """Not a paid plan or credit pack sold by card (or its Price id setting is unset)."""


class AlreadySubscribed(Exception):
    """The user has a live subscription: plan changes and cancellation go through the Customer Portal."""


class NoCustomer(Exception):
    """The user has never paid by card: there is no Stripe customer to open the portal for."""


class UnknownPurchase(LookupError):
    """No such card purchase of this user."""


class BadEvent(ValueError):
    """The webhook's body is not a Stripe event."""


@dataclass
class _Effects:
    """What an event did, to finish after the commit."""

    owner_id: str | None = None
    outcome: str = "applied"  # applied | stale | ignored | unknown_customer
    changed: list[tuple[UserRow, dict[str, str]]] = field(default_factory=list)
    mails: list[tuple[str, str, str]] = field(default_factory=list)  # to, subject, body


class PaymentsService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings,
                 accounts: AccountsService, credits: CreditLedger, gateway: StripeGateway | None = None) -> None:
        self.sessions, self.clock, self.settings = sessions, clock, settings
        self.accounts, self.credits = accounts, credits
        self.gateway = gateway or StripeGateway(settings)
        self.dev_stripe: FakeStripe | None = None  # `pulse demo`'s local fake Stripe, stopped with the service

    async def close(self) -> None:
        await self.gateway.close()
        if self.dev_stripe is not None:
            await self.dev_stripe.stop()
            self.dev_stripe = None

    @property
    def catalog(self) -> core.Catalog:
        return core.Catalog(stripe_prices(self.settings))  # settings may change (the demo sets them at start)

    # --- checkout and the portal ---

    async def checkout(self, user: UserRow, name: str, kind: str) -> tuple[str, str]:
        """A Checkout Session for a plan or a credit pack (`kind` plan | credits): its id and URL."""
        product = self.catalog.named(name)
        if product is None or product.kind != kind:
            raise UnknownProduct(name)
        if product.kind == "plan" and await self._live_subscription(user.id) is not None:
            raise AlreadySubscribed("you have a subscription: change or cancel it in the billing portal")
        customer = await self._customer(user)
        base = self.settings.public_url.rstrip("/")
        meta = {"user_id": user.id, "product": product.name}
        params: dict[str, Any] = {
            "mode": product.mode, "customer": customer, "client_reference_id": user.id, "metadata": meta,
            "line_items": [{"price": product.price_id, "quantity": 1}],
            "success_url": f"{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{base}/checkout/cancel",
        }
        if product.kind == "plan":
            params["subscription_data"] = {"metadata": meta}  # every subscription event then names its user
            metered = self.settings.stripe_price_api_calls
            if metered and product.plan().metered_api_calls:  # calls past the quota are billed on this price
                params["line_items"].append({"price": metered})
        else:
            params["payment_intent_data"] = {"metadata": meta}
        return await self.gateway.create_checkout(
            params, idempotency_key=f"checkout:{user.id}:{product.name}:{uuid.uuid4()}")

    async def portal(self, user: UserRow) -> str:
        async with self.sessions() as s:
            row = await s.get(StripeCustomerRow, user.id)
        if row is None:
            raise NoCustomer("you have no card payments yet: subscribe first")
        return await self.gateway.portal(customer_id=row.customer_id,
                                         return_url=f"{self.settings.public_url.rstrip('/')}/settings#billing")

    async def _customer(self, user: UserRow) -> str:
        """The user's Stripe customer, made once (the idempotency key is the user's, so a race makes one)."""
        async with self.sessions() as s:
            row = await s.get(StripeCustomerRow, user.id)
        if row is not None:
            return row.customer_id
        customer = await self.gateway.create_customer(email=user.email or "", user_id=user.id,
                                                      idempotency_key=f"customer:{user.id}")
        async with self.sessions() as s:
            s.add(StripeCustomerRow(owner_id=user.id, customer_id=customer, created_at_ms=self.clock.now_ms()))
            try:
                await s.commit()
            except IntegrityError:  # a concurrent checkout stored the same customer first
                await s.rollback()
        return customer

    async def _live_subscription(self, owner_id: str) -> StripeSubscriptionRow | None:
        async with self.sessions() as s:
            rows = (await s.execute(select(StripeSubscriptionRow).where(
                StripeSubscriptionRow.owner_id == owner_id,
                StripeSubscriptionRow.status.not_in(ENDED)))).scalars().all()
        return max(rows, key=lambda r: r.state_created_s, default=None)

    # --- the billing view ---

    async def billing(self, user: UserRow) -> dict[str, Any]:
        """Plan, subscription status, renewal, invoices, credit balance and purchases: all from our own tables."""
        async with self.sessions() as s:
            subs = (await s.execute(select(StripeSubscriptionRow).where(
                StripeSubscriptionRow.owner_id == user.id))).scalars().all()
            sub = max(subs, key=lambda r: (r.status not in ENDED, r.state_created_s), default=None)
            invoices = (await s.execute(select(StripeInvoiceRow).where(StripeInvoiceRow.owner_id == user.id)
                                        .order_by(StripeInvoiceRow.created_s.desc()).limit(24))).scalars().all()
            purchases = (await s.execute(select(CreditPurchaseRow).where(CreditPurchaseRow.owner_id == user.id)
                                         .order_by(CreditPurchaseRow.created_at_ms.desc()).limit(50))).scalars().all()
            balance = await self.credits.balance(s, user.id)
            customer = await s.get(StripeCustomerRow, user.id)
            term = await s.get(UsdtPlanTermRow, user.id)
        running = term is not None and term.ended_at_ms is None
        return {
            "plan": user.plan, "status": sub.status if sub else "none",
            "subscription_plan": sub.plan if sub else None,
            "renews_at_ms": sub.current_period_end_ms if sub and sub.status not in ENDED else None,
            "cancel_at_period_end": bool(sub and sub.cancel_at_period_end),
            "grace_ends_at_ms": sub.grace_ends_at_ms if sub and sub.dropped_at_ms is None else None,
            "has_customer": customer is not None, "card_payments": self.gateway.configured,
            "invoices": [{"id": i.invoice_id, "status": i.status, "amount_due": i.amount_due,
                          "amount_paid": i.amount_paid, "currency": i.currency,
                          "hosted_invoice_url": i.hosted_invoice_url, "created_ms": i.created_s * 1000}
                         for i in invoices],
            "usdt_plan": term.plan if term is not None and running else None,
            "usdt_paid_until_ms": term.ends_at_ms if term is not None and running else None,
            "credit_balance": balance, "credit_debt": sum(p.debt for p in purchases),
            "purchases": [{"pack": p.pack, "credits": p.credits, "taken_back": p.taken_back,
                           "created_at_ms": p.created_at_ms} for p in purchases],
        }

    # --- webhooks ---

    async def handle_webhook(self, payload: bytes, signature: str | None) -> str:
        """Verify and apply one event; its outcome (`duplicate` when this id was applied before)."""
        secrets = core.split_secrets(self.settings.stripe_webhook_secret.get_secret_value()
                                     if self.settings.stripe_webhook_secret else None)
        core.verify_signature(payload, signature, secrets, self.clock.now_ms() // 1000)
        event = _event(payload)
        async with self.sessions() as s:
            if await s.get(StripeEventRow, event["id"]) is not None:
                return "duplicate"
            effects = await self._apply(s, event)
            obj = event["data"]["object"]
            s.add(StripeEventRow(
                event_id=event["id"], type=event["type"], created_s=event["created"], owner_id=effects.owner_id,
                outcome=effects.outcome, customer_id=core._id(obj.get("customer")),
                received_at_ms=self.clock.now_ms(),
                payload=event if effects.outcome == "unknown_customer" else None))
            try:
                await s.commit()
            except IntegrityError:  # the same event, delivered twice at once: the other delivery applied it
                await s.rollback()
                return "duplicate"
        await self._after(effects)
        log.info("stripe event", event_id=event["id"], type=event["type"], outcome=effects.outcome)
        return effects.outcome

    async def _after(self, effects: _Effects) -> None:
        for user, changed in effects.changed:
            await self.accounts.announce_user_change(user, changed)
        for to, subject, body in effects.mails:
            if to:  # a wallet-only account has no address to tell
                await self.accounts.mailer.send(to, subject, body, kind="billing")

    async def _apply(self, s: AsyncSession, event: dict[str, Any]) -> _Effects:
        kind, obj, created = event["type"], event["data"]["object"], int(event["created"])
        if kind not in core.HANDLED:
            return _Effects(outcome="ignored")
        if kind == "checkout.session.completed":
            return await self._checkout_completed(s, obj)
        if kind.startswith("customer.subscription."):
            return await self._subscription(s, core.subscription_state(obj), created)
        if kind in ("invoice.paid", "invoice.payment_failed"):
            return await self._invoice(s, core.invoice_state(obj, paid=kind == "invoice.paid"))
        return await self._refund(s, core.refund(obj))

    async def _owner(self, s: AsyncSession, user_id: str | None, customer_id: str | None) -> UserRow | None:
        """The user an object names: its metadata.user_id (set at checkout), else its customer's."""
        if user_id:
            user = await s.get(UserRow, user_id)
            if user is not None:
                return user
        if customer_id:
            owner = await s.scalar(select(StripeCustomerRow.owner_id).where(
                StripeCustomerRow.customer_id == customer_id))
            if owner is not None:
                return await s.get(UserRow, owner)
        return None

    async def _checkout_completed(self, s: AsyncSession, obj: dict[str, Any]) -> _Effects:
        bought = core.purchase(obj)
        user = await self._owner(s, bought.user_id, bought.customer_id)
        if user is None:
            return _Effects(outcome="unknown_customer")
        effects = _Effects(owner_id=user.id)
        if bought.customer_id and await s.get(StripeCustomerRow, user.id) is None:
            s.add(StripeCustomerRow(owner_id=user.id, customer_id=bought.customer_id,
                                    created_at_ms=self.clock.now_ms()))
        product = self.catalog.named(bought.pack or "")
        if obj.get("payment_status") != "paid" or product is None:
            effects.outcome = "ignored"
            return effects
        if product.kind == "credits":
            await self._credit_purchase(s, user, bought, product.pack().credits)
        elif obj.get("subscription"):
            await self._subscribed_at_checkout(s, user, str(core._id(obj["subscription"])), bought, product.name,
                                               effects)
        return effects

    async def _credit_purchase(self, s: AsyncSession, user: UserRow, bought: core.Purchase, credits: int) -> None:
        if await s.get(CreditPurchaseRow, bought.session_id) is None:
            s.add(CreditPurchaseRow(session_id=bought.session_id, owner_id=user.id, pack=bought.pack or "",
                                    credits=credits, payment_intent=bought.payment_intent, taken_back=0, debt=0,
                                    created_at_ms=self.clock.now_ms()))
        granted = await self.credits.grant(s, owner_id=user.id, amount=credits, kind=Kind.PURCHASE,
                                           idempotency_key=f"stripe:{bought.session_id}",
                                           reason=f"{bought.pack} bought by card")
        if not granted.repeated:  # a refund's debt is paid first
            await debt.pay_down(s, self.credits, owner_id=user.id, credits=credits,
                                key=f"stripe:{bought.session_id}")

    async def _subscribed_at_checkout(self, s: AsyncSession, user: UserRow, sub_id: str, bought: core.Purchase,
                                      plan: str, effects: _Effects) -> None:
        """The session names the subscription: the plan starts now even when its own events come later. The row
        made here is the weakest state (`state_created_s` 0), so any subscription event overrides it."""
        if await s.get(StripeSubscriptionRow, sub_id) is not None:
            return
        price = self.catalog.named(plan)
        s.add(StripeSubscriptionRow(
            subscription_id=sub_id, owner_id=user.id, customer_id=bought.customer_id, status="active",
            price_id=price.price_id if price else None, plan=plan, current_period_end_ms=None,
            cancel_at_period_end=False, state_created_s=0, updated_at_ms=self.clock.now_ms()))
        self._set_plan(s, user, plan, effects, action="payments.plan_changed", why="checkout")

    async def _subscription(self, s: AsyncSession, state: core.SubscriptionState, created: int) -> _Effects:
        user = await self._owner(s, state.user_id, state.customer_id)
        if user is None:
            return _Effects(outcome="unknown_customer")
        effects = _Effects(owner_id=user.id)
        row = await s.get(StripeSubscriptionRow, state.subscription_id)
        if row is not None and not core.newer_than(created, row.state_created_s):
            effects.outcome = "stale"  # an older state than the one we hold: Stripe sent it late
            return effects
        now = self.clock.now_ms()
        product = self.catalog.for_price(state.price_id)
        if row is None:
            row = StripeSubscriptionRow(subscription_id=state.subscription_id, owner_id=user.id,
                                        cancel_at_period_end=False, state_created_s=created, updated_at_ms=now,
                                        status=state.status)
            s.add(row)
        row.customer_id, row.status, row.price_id = state.customer_id, state.status, state.price_id
        row.plan = product.name if product else row.plan
        row.current_period_end_ms = state.current_period_end_s * 1000 if state.current_period_end_s else None
        row.cancel_at_period_end, row.state_created_s, row.updated_at_ms = state.cancel_at_period_end, created, now
        if state.status in core.PLAN_GIVING:
            row.grace_ends_at_ms = row.dropped_at_ms = None
        elif state.status in core.IN_GRACE:
            self._start_grace(row, user, effects)
        plan = core.plan_for(state, self.catalog)
        if plan == DEFAULT_PLAN and await self._other_live(s, user.id, state.subscription_id):
            plan = None  # another subscription of theirs still gives a plan
        if plan is not None:
            self._set_plan(s, user, plan, effects, action="payments.plan_changed", why=state.status)
        return effects

    async def _other_live(self, s: AsyncSession, owner_id: str, sub_id: str) -> bool:
        found = await s.scalar(select(StripeSubscriptionRow.subscription_id).where(
            StripeSubscriptionRow.owner_id == owner_id, StripeSubscriptionRow.subscription_id != sub_id,
            StripeSubscriptionRow.status.in_(core.PLAN_GIVING)).limit(1))
        return found is not None

    def _start_grace(self, row: StripeSubscriptionRow, user: UserRow, effects: _Effects) -> None:
        """A renewal failed: the plan is kept until the grace period ends (once per failure run), and the user is
        told."""
        if row.grace_ends_at_ms is not None or row.dropped_at_ms is not None:
            return
        row.grace_ends_at_ms = core.grace_ends_ms(self.clock.now_ms(), self.settings.stripe_grace_period_s)
        effects.mails.append((user.email or "", "Your marketpulse payment failed", (
            f"We could not charge your card for the {user.plan} plan. Stripe will retry; you can update your card "
            f"in Settings > Billing. Your plan stays until {utc_text(row.grace_ends_at_ms)}, then it becomes "
            f"{DEFAULT_PLAN}.")))

    async def _invoice(self, s: AsyncSession, inv: core.InvoiceState) -> _Effects:
        sub = await s.get(StripeSubscriptionRow, inv.subscription_id) if inv.subscription_id else None
        user = await self._owner(s, inv.user_id or (sub.owner_id if sub else None), inv.customer_id)
        if user is None:
            return _Effects(outcome="unknown_customer")
        effects = _Effects(owner_id=user.id)
        row = await s.get(StripeInvoiceRow, inv.invoice_id)
        if row is None:
            row = StripeInvoiceRow(invoice_id=inv.invoice_id, owner_id=user.id, created_s=inv.created_s)
            s.add(row)
        if not (row.status == "paid" and not inv.paid):  # a late failure never un-pays a paid invoice
            row.subscription_id, row.status, row.currency = inv.subscription_id, inv.status, inv.currency
            row.amount_due, row.amount_paid, row.hosted_invoice_url = (inv.amount_due, inv.amount_paid,
                                                                       inv.hosted_invoice_url)
        if sub is not None and inv.paid:
            sub.grace_ends_at_ms = sub.dropped_at_ms = None
        elif sub is not None:
            self._start_grace(sub, user, effects)
        return effects

    async def _refund(self, s: AsyncSession, refund: core.Refund) -> _Effects:
        bought = (await s.scalar(select(CreditPurchaseRow).where(
            CreditPurchaseRow.payment_intent == refund.payment_intent)) if refund.payment_intent else None)
        if bought is None:
            user = await self._owner(s, None, refund.customer_id)
            return _Effects(owner_id=user.id if user else None,
                            outcome="ignored" if user else "unknown_customer")
        take = core.credits_to_take_back(bought.credits, refund.amount_cents, refund.refunded_cents,
                                         bought.taken_back)
        effects = _Effects(owner_id=bought.owner_id)
        if take <= 0:
            return effects
        balance = await self.credits.balance(s, bought.owner_id)
        can = min(balance, take)
        if can > 0:
            await self.credits.apply(s, owner_id=bought.owner_id, kind=Kind.ADJUSTMENT, amount=-can,
                                     idempotency_key=f"stripe-refund:{refund.charge_id}:{refund.refunded_cents}",
                                     reason=f"{bought.pack} refunded by card")
        bought.taken_back += take
        bought.debt += take - can  # what the balance couldn't give back: shown as the debt
        return effects

    def _set_plan(self, s: AsyncSession, user: UserRow, plan: str, effects: _Effects, *, action: str,
                  why: str) -> None:
        changed = self.accounts.change_user(s, user, {"plan": plan}, action=action, actor_id=None,
                                            note={"reason": why})
        if changed:
            effects.changed.append((user, changed))

    # --- the grace period's end (a leased duty) ---

    async def expire_grace(self) -> int:
        """Drop to free every user whose renewal failed longer ago than the grace period; how many."""
        now = self.clock.now_ms()
        async with self.sessions() as s:
            due = (await s.execute(select(StripeSubscriptionRow).where(
                StripeSubscriptionRow.grace_ends_at_ms <= now,
                StripeSubscriptionRow.dropped_at_ms.is_(None)))).scalars().all()
            effects = _Effects()
            for row in due:
                row.dropped_at_ms = now
                user = await s.get(UserRow, row.owner_id)
                if user is None or await self._other_live(s, user.id, row.subscription_id):
                    continue
                self._set_plan(s, user, DEFAULT_PLAN, effects, action="payments.grace_expired",
                               why="payment_failed")
                effects.mails.append((user.email or "", "Your marketpulse plan is now free", (
                    f"Your card payment did not go through within the grace period, so your plan is now "
                    f"{DEFAULT_PLAN}. Pay the open invoice or subscribe again in Settings > Billing.")))
            await s.commit()
        await self._after(effects)
        return len(effects.changed)

    # --- for administrators ---

    async def purchases(self, owner_id: str) -> list[CreditPurchaseRow]:
        async with self.sessions() as s:
            return list((await s.execute(select(CreditPurchaseRow).where(CreditPurchaseRow.owner_id == owner_id)
                                         .order_by(CreditPurchaseRow.created_at_ms.desc()))).scalars())

    async def refund_purchase(self, admin_id: str, owner_id: str, session_id: str, client: str | None) -> str:
        """An administrator refunds a user's credit pack in full at Stripe (audited); the `charge.refunded` event
        that follows takes the credits back. The refund's id."""
        async with self.sessions() as s:
            bought = await s.get(CreditPurchaseRow, session_id)
        if bought is None or bought.owner_id != owner_id or not bought.payment_intent:
            raise UnknownPurchase(session_id)
        refund_id = await self.gateway.refund(payment_intent=bought.payment_intent,
                                              idempotency_key=f"refund:{session_id}")
        await self.accounts.audit.record("admin.payment_refunded", actor_id=admin_id, target_type="user",
                                         target_id=owner_id, new={"purchase": session_id, "pack": bought.pack,
                                                                  "refund": refund_id}, client=client)
        return refund_id

    async def all_payments(self, kind: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        """Every payment, newest first, for administrators: card invoices (subscriptions), card credit purchases
        and USDT invoices, merged; one page of them and whether more follow."""
        from marketpulse.accounts.plans import CREDIT_PACKS
        from marketpulse.onchain.core import display
        from marketpulse.onchain.tables import UsdtInvoiceRow

        want = offset + limit + 1
        out: list[dict[str, Any]] = []
        prices = {p.name: round(p.price_usd * 100) for p in CREDIT_PACKS}
        async with self.sessions() as s:
            if kind in (None, "card_invoice"):
                for inv, email in (await s.execute(
                        select(StripeInvoiceRow, UserRow.email)
                        .outerjoin(UserRow, UserRow.id == StripeInvoiceRow.owner_id)
                        .order_by(StripeInvoiceRow.created_s.desc(), StripeInvoiceRow.invoice_id.desc())
                        .limit(want))).all():
                    out.append({"kind": "card_invoice", "id": inv.invoice_id, "owner_id": inv.owner_id,
                                "email": email, "product": "subscription",
                                "amount": f"{(inv.amount_paid if inv.status == 'paid' else inv.amount_due) / 100:.2f}",
                                "currency": inv.currency.upper(), "status": inv.status,
                                "created_at_ms": inv.created_s * 1000, "refundable": False, "note": ""})
            if kind in (None, "card_purchase"):
                for bought, email in (await s.execute(
                        select(CreditPurchaseRow, UserRow.email)
                        .outerjoin(UserRow, UserRow.id == CreditPurchaseRow.owner_id)
                        .order_by(CreditPurchaseRow.created_at_ms.desc(), CreditPurchaseRow.session_id.desc())
                        .limit(want))).all():
                    status = ("refunded" if bought.taken_back >= bought.credits else
                              "partly refunded" if bought.taken_back else "paid")
                    out.append({"kind": "card_purchase", "id": bought.session_id, "owner_id": bought.owner_id,
                                "email": email, "product": bought.pack,
                                "amount": f"{prices.get(bought.pack, 0) / 100:.2f}", "currency": "USD",
                                "status": status, "created_at_ms": bought.created_at_ms,
                                "refundable": bool(bought.payment_intent) and status == "paid",
                                "note": f"debt {bought.debt} credits" if bought.debt else ""})
            if kind in (None, "usdt_invoice"):
                now = self.clock.now_ms()
                for usd, email in (await s.execute(
                        select(UsdtInvoiceRow, UserRow.email).outerjoin(UserRow, UserRow.id == UsdtInvoiceRow.owner_id)
                        .order_by(UsdtInvoiceRow.created_at_ms.desc(), UsdtInvoiceRow.id.desc())
                        .limit(want))).all():
                    shown = "expired" if usd.status == "pending" and now > usd.expires_at_ms else usd.status
                    out.append({"kind": "usdt_invoice", "id": usd.id, "owner_id": usd.owner_id, "email": email,
                                "product": usd.product, "amount": display(int(usd.paid_units or usd.amount),
                                                                          usd.decimals),
                                "currency": f"USDT ({usd.chain})", "status": shown,
                                "created_at_ms": usd.created_at_ms, "refundable": False, "note": usd.note})
        out.sort(key=lambda p: (p["created_at_ms"], p["id"]), reverse=True)
        return out[offset:offset + limit], len(out) > offset + limit

    async def events(self, outcome: str | None, limit: int, offset: int) -> tuple[list[StripeEventRow], int]:
        from marketpulse.storage.database import page

        where = [StripeEventRow.outcome == outcome] if outcome else []
        return await page(self.sessions, StripeEventRow, where, [StripeEventRow.received_at_ms.desc()],
                          limit=limit, offset=offset)


def _event(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
        ok = (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)
              and isinstance(event.get("created"), int) and isinstance((event.get("data") or {}).get("object"),
                                                                          dict))
    except ValueError:
        ok = False
    if not ok:
        raise BadEvent("the body is not a Stripe event (id, type, created, data.object)")
    return dict(event)
