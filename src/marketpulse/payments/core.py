"""Payments' pure rules (no I/O): what a Stripe Price buys, the webhook signature, and what each Stripe event means.

The service reads an event's object, asks `decide` what it means (a subscription's new state, a credit purchase, a
refund, a failed payment…), and applies that in one transaction with the event's id, so an event is applied once.

Out-of-order delivery: Stripe promises no order, so a subscription's state is taken only from an event newer
(`created`) than the one that last set it (`newer_than`); an older `customer.subscription.updated` arriving after
`.deleted` changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marketpulse.accounts.plans import CREDIT_PACKS, DEFAULT_PLAN, CreditPack, Plan, plan_named

TOLERANCE_S = 300  # Stripe's own default: a signature older (or newer) than this is refused
HANDLED = frozenset({
    "checkout.session.completed", "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "invoice.paid", "invoice.payment_failed", "charge.refunded",
})
# A subscription in these states gives its plan; past_due keeps it through the grace period; the rest end it.
PLAN_GIVING = frozenset({"active", "trialing"})
IN_GRACE = frozenset({"past_due"})


class SignatureError(ValueError):
    """The Stripe-Signature header is missing, malformed, too old, or signed with none of our secrets."""


def verify_signature(payload: bytes, header: str | None, secrets: Sequence[str], now_s: int,
                     tolerance_s: int = TOLERANCE_S) -> None:
    """Stripe's scheme: `t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload">[,v1=…]`. Any v1 made with any of our
    secrets passes (two are live while a secret is rotated); the time must be within `tolerance_s` of now."""
    if not secrets:
        raise SignatureError("no webhook secret is configured")
    if not header:
        raise SignatureError("no Stripe-Signature header")
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v.strip() for k, v in parts if k.strip() == "t"]
    signatures = [v.strip() for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not signatures:
        raise SignatureError("the Stripe-Signature header has no timestamp or no v1 signature")
    if abs(now_s - int(stamps[0])) > tolerance_s:
        raise SignatureError("the signature's timestamp is outside the tolerance")
    signed = stamps[0].encode() + b"." + payload
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, s) for s in signatures):
            return
    raise SignatureError("no signature matches a webhook secret")


def split_secrets(text: str | None) -> list[str]:
    """`PULSE_STRIPE_WEBHOOK_SECRET`: one secret, or several comma-separated while one is rotated."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


# --- what a price buys -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """A paid plan (a subscription) or a credit pack (paid once)."""

    name: str  # the plan's or the pack's name
    kind: str  # plan | credits
    price_id: str

    @property
    def mode(self) -> str:
        """The Checkout Session mode that sells it."""
        return "subscription" if self.kind == "plan" else "payment"

    def plan(self) -> Plan:
        return plan_named(self.name)

    def pack(self) -> CreditPack:
        return next(p for p in CREDIT_PACKS if p.name == self.name)


class Catalog:
    """The products the configured Price ids sell (plans and packs whose price setting is unset aren't sold)."""

    def __init__(self, prices: Mapping[str, str | None]) -> None:
        packs = {p.name for p in CREDIT_PACKS}
        self.products = {name: Product(name, "credits" if name in packs else "plan", price)
                         for name, price in prices.items() if price}
        self._by_price = {p.price_id: p for p in self.products.values()}

    def named(self, name: str) -> Product | None:
        return self.products.get(name)

    def for_price(self, price_id: str | None) -> Product | None:
        return self._by_price.get(price_id or "")


# --- what an event means ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionState:
    subscription_id: str
    customer_id: str | None
    user_id: str | None  # metadata.user_id, set at checkout
    status: str
    price_id: str | None
    current_period_end_s: int | None
    cancel_at_period_end: bool


@dataclass(frozen=True)
class Purchase:
    """A paid credit pack (a Checkout Session in payment mode)."""

    session_id: str
    user_id: str | None
    customer_id: str | None
    payment_intent: str | None
    pack: str | None  # metadata.product


@dataclass(frozen=True)
class Refund:
    charge_id: str
    payment_intent: str | None
    customer_id: str | None
    amount_cents: int  # charged
    refunded_cents: int  # refunded so far


@dataclass(frozen=True)
class InvoiceState:
    invoice_id: str
    customer_id: str | None
    subscription_id: str | None
    user_id: str | None
    status: str
    paid: bool  # invoice.paid (else payment_failed)
    amount_due: int
    amount_paid: int
    currency: str
    hosted_invoice_url: str | None
    created_s: int


def _user_of(obj: Mapping[str, Any], *nested: Mapping[str, Any] | None) -> str | None:
    for source in (obj, *nested):
        if source:
            found = (source.get("metadata") or {}).get("user_id")
            if found:
                return str(found)
    return None


def subscription_state(sub: Mapping[str, Any]) -> SubscriptionState:
    items = ((sub.get("items") or {}).get("data") or [{}])
    item = items[0] if items else {}
    # Since API 2025-03-31 the period lives on the items; older versions kept it on the subscription.
    period_end = item.get("current_period_end") or sub.get("current_period_end")
    return SubscriptionState(
        subscription_id=str(sub["id"]), customer_id=_id(sub.get("customer")), user_id=_user_of(sub),
        status=str(sub.get("status") or "incomplete"), price_id=_id((item.get("price") or {}).get("id")),
        current_period_end_s=int(period_end) if period_end else None,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")))


def invoice_state(inv: Mapping[str, Any], paid: bool) -> InvoiceState:
    # Since API 2025-03-31 an invoice names its subscription under parent.subscription_details.
    details = ((inv.get("parent") or {}).get("subscription_details") or {})
    lines = ((inv.get("lines") or {}).get("data") or [])
    return InvoiceState(
        invoice_id=str(inv["id"]), customer_id=_id(inv.get("customer")),
        subscription_id=_id(details.get("subscription") or inv.get("subscription")),
        user_id=_user_of(inv, details, inv.get("subscription_details"), *(lines[:1])),
        status=str(inv.get("status") or ("paid" if paid else "open")), paid=paid,
        amount_due=int(inv.get("amount_due") or 0), amount_paid=int(inv.get("amount_paid") or 0),
        currency=str(inv.get("currency") or "usd"), hosted_invoice_url=inv.get("hosted_invoice_url"),
        created_s=int(inv.get("created") or 0))


def purchase(session: Mapping[str, Any]) -> Purchase:
    meta = session.get("metadata") or {}
    user = session.get("client_reference_id") or meta.get("user_id")
    return Purchase(session_id=str(session["id"]), user_id=str(user) if user else None,
                    customer_id=_id(session.get("customer")), payment_intent=_id(session.get("payment_intent")),
                    pack=meta.get("product"))


def refund(charge: Mapping[str, Any]) -> Refund:
    return Refund(charge_id=str(charge["id"]), payment_intent=_id(charge.get("payment_intent")),
                  customer_id=_id(charge.get("customer")), amount_cents=int(charge.get("amount") or 0),
                  refunded_cents=int(charge.get("amount_refunded") or 0))


def _id(value: Any) -> str | None:
    """An expandable field: the id, or the expanded object's id."""
    if isinstance(value, Mapping):
        return str(value["id"]) if value.get("id") else None
    return str(value) if value else None


def newer_than(event_created_s: int, last_applied_s: int | None) -> bool:
    """Whether an event may set a subscription's state: not older than the one that set it last (Stripe's
    `created` has second resolution, so an equal time is taken as later: it arrived later)."""
    return last_applied_s is None or event_created_s >= last_applied_s


def plan_for(state: SubscriptionState, catalog: Catalog) -> str | None:
    """The plan a subscription in this state gives: its price's plan while active, free once it has ended; None:
    this state changes nothing (past_due: the plan is kept through the grace period, and a past_due event after
    the grace ran out doesn't bring it back; incomplete: the first payment hasn't happened)."""
    if state.status in PLAN_GIVING:
        product = catalog.for_price(state.price_id)
        return product.name if product and product.kind == "plan" else None
    if state.status in ("canceled", "unpaid", "incomplete_expired"):
        return DEFAULT_PLAN
    return None


def credits_to_take_back(pack_credits: int, amount_cents: int, refunded_cents: int, taken_back: int) -> int:
    """Credits a refund takes back, beyond those already taken back: the refunded share of the pack's credits."""
    if amount_cents <= 0:
        return 0
    due = pack_credits * min(refunded_cents, amount_cents) // amount_cents
    return max(0, due - taken_back)


def grace_ends_ms(failed_at_ms: int, grace_s: int) -> int:
    return failed_at_ms + grace_s * 1000


# --- metered API calls --------------------------------------------------------------------------------------------
#
# A plan includes `api_calls_included_per_month` calls a (UTC calendar) month. On a metered plan with a live card
# subscription the calls past it are reported to Stripe as Billing Meter Events; each report covers the excess
# calls from `start` (the excess reported before) to `end` (the excess now), so reports of one month chain without
# gaps or overlap, and its identifier (what Stripe counts once) is made of exactly that: a retried report, or two
# reporters that saw the same state, name the same identifier.

METERING_STATUSES = frozenset({"active", "trialing", "past_due"})  # a subscription Stripe still invoices


def usage_period(now_ms: int) -> str:
    """The month API calls at `now_ms` count in: `YYYY-MM` (UTC)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m")


def period_bounds(now_ms: int) -> tuple[int, int]:
    """The first millisecond of `now_ms`'s month and of the next (UTC)."""
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def previous_period(now_ms: int) -> str:
    """The month before `now_ms`'s."""
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    return f"{now.year - 1}-12" if now.month == 1 else f"{now.year}-{now.month - 1:02d}"


def excess_calls(calls: int, included: int | None) -> int:
    """Calls beyond the month's included quota (none when the plan's calls are unlimited)."""
    return 0 if included is None else max(0, calls - included)


def meter_identifier(owner_id: str, period: str, start: int, end: int) -> str:
    """The meter event's identifier for the excess calls (start, end] of a user's month."""
    return f"api:{owner_id}:{period}:{start}-{end}"
