"""The payments API (card payments through Stripe).

    GET  /api/v1/payments/products         what can be bought by card: paid plans and credit packs
    POST /api/v1/payments/checkout         {plan} or {credit_pack}: a Stripe Checkout Session's URL to open
    POST /api/v1/payments/portal           the Stripe Customer Portal's URL (card changes, cancellation)
    GET  /api/v1/payments/subscription     plan, status, renewal, invoices, credit balance and purchases
    POST /api/v1/payments/webhook          Stripe's events (Stripe-Signature verified; each event id once)
    GET  /api/v1/admin/payments/events     administrators: events received (`outcome=unknown_customer`: events
                                           naming no user of ours, kept whole)
    GET  /api/v1/admin/payments            administrators: every payment (card invoices and purchases, USDT invoices),
                                           newest first (`kind`, `limit`, `cursor`)
    GET  /api/v1/admin/users/{id}/payments                      administrators: a user's billing and purchases
    POST /api/v1/admin/users/{id}/payments/{session_id}/refund  administrators: refund a credit pack at Stripe
"""

from __future__ import annotations

from typing import Any

import stripe
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketpulse.accounts.admin_views import require_admin
from marketpulse.accounts.plans import CREDIT_PACKS, PLANS
from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import Principal
from marketpulse.accounts.views import current_user, require_scope
from marketpulse.api.pages import Cursor, Page, next_offset, offset_of, page
from marketpulse.payments.core import SignatureError
from marketpulse.payments.service import (
    AlreadySubscribed,
    BadEvent,
    NoCustomer,
    PaymentsService,
    UnknownProduct,
    UnknownPurchase,
)
from marketpulse.payments.stripe_client import PaymentsNotConfigured

router = APIRouter(tags=["payments"])

NOT_CONFIGURED: dict[int | str, dict[str, Any]] = {503: {
    "description": "Card payments are not configured (PULSE_STRIPE_SECRET_KEY), or Stripe could not be reached"}}


def get_payments(request: Request) -> PaymentsService:
    payments: PaymentsService = request.app.state.runtime.services.payments
    return payments


class ProductOut(BaseModel):
    name: str
    kind: str  # plan | credits
    title: str
    price_usd: float
    per: str  # month | once
    credits: int | None = None
    available: bool  # sold by card here (its Stripe Price id is configured)


class ProductsOut(Page[ProductOut]):
    """`data`: the products on sale."""

    card_payments: bool


class CheckoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str | None = Field(None, max_length=32, description="a paid plan: pro or elite")
    credit_pack: str | None = Field(None, max_length=32, description="a credit pack: credits_100 or credits_1000")

    @model_validator(mode="after")
    def _one(self) -> CheckoutBody:
        if (self.plan is None) == (self.credit_pack is None):
            raise ValueError("send either plan or credit_pack")
        return self


class CheckoutOut(BaseModel):
    id: str
    url: str


class PortalOut(BaseModel):
    url: str


class InvoiceOut(BaseModel):
    id: str
    status: str
    amount_due: int  # cents
    amount_paid: int
    currency: str
    hosted_invoice_url: str | None
    created_ms: int


class PurchaseOut(BaseModel):
    pack: str
    credits: int
    taken_back: int  # credits a refund took back
    created_at_ms: int


class SubscriptionOut(BaseModel):
    plan: str
    status: str  # the Stripe subscription's (active, past_due, canceled, …), or none
    subscription_plan: str | None
    renews_at_ms: int | None
    cancel_at_period_end: bool
    grace_ends_at_ms: int | None  # a renewal failed: the plan drops to free then unless it is paid
    has_customer: bool
    card_payments: bool
    invoices: list[InvoiceOut]
    usdt_plan: str | None = None  # a plan paid in USDT, while its paid period runs
    usdt_paid_until_ms: int | None = None  # then it drops to free unless a new invoice renews it
    credit_balance: int
    credit_debt: int  # credits refunded by card that the balance could not give back
    purchases: list[PurchaseOut]


class WebhookOut(BaseModel):
    received: bool
    outcome: str


class PaymentEventOut(BaseModel):
    event_id: str
    type: str
    created_s: int
    owner_id: str | None
    outcome: str
    customer_id: str | None
    received_at_ms: int
    payload: dict[str, Any] | None


class PaymentEventsOut(Page[PaymentEventOut]):
    total: int


def _field_error(field: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error", "input": value}])


def _unavailable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail={"reason": "payments_unavailable",
                                                                       "message": message})


@router.get("/api/v1/payments/products", response_model=ProductsOut)
async def products(payments: PaymentsService = Depends(get_payments)) -> ProductsOut:
    """Paid plans and credit packs, and whether each can be bought by card here."""
    catalog = payments.catalog
    card = payments.gateway.configured
    out = [ProductOut(name=p.name, kind="plan", title=p.title, price_usd=p.price_per_month_usd or 0.0, per="month",
                      available=card and catalog.named(p.name) is not None)
           for p in PLANS if p.price_per_month_usd]
    out += [ProductOut(name=c.name, kind="credits", title=f"{c.credits:,} credits", price_usd=c.price_usd,
                       per="once", credits=c.credits, available=card and catalog.named(c.name) is not None)
            for c in CREDIT_PACKS]
    return ProductsOut(data=out, card_payments=card)


@router.post("/api/v1/payments/checkout", response_model=CheckoutOut, responses={
    **UNAUTHORIZED, 409: {"description": "A subscription exists: change it in the billing portal"},
    **NOT_CONFIGURED})
async def checkout(body: CheckoutBody, request: Request, principal: Principal = Depends(current_user),
                   payments: PaymentsService = Depends(get_payments)) -> CheckoutOut:
    """A Stripe Checkout Session for a paid plan (a monthly subscription) or a credit pack; open its `url`."""
    require_scope(request, principal)
    field = "plan" if body.plan is not None else "credit_pack"
    name = (body.plan or body.credit_pack or "").strip().lower()
    try:
        session_id, url = await payments.checkout(principal.user, name, "plan" if field == "plan" else "credits")
    except UnknownProduct:
        sold = sorted(n for n, p in payments.catalog.products.items()
                      if (p.kind == "plan") == (field == "plan"))
        raise _field_error(field, f"not sold by card here: one of {', '.join(sold) or '(none configured)'}",
                           name) from None
    except AlreadySubscribed as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail={"reason": "subscribed", "message": str(exc)}) from None
    except PaymentsNotConfigured as exc:
        raise _unavailable(str(exc)) from None
    except stripe.StripeError as exc:
        raise _unavailable(f"Stripe refused or could not be reached ({type(exc).__name__})") from None
    return CheckoutOut(id=session_id, url=url)


@router.post("/api/v1/payments/portal", response_model=PortalOut, responses={
    **UNAUTHORIZED, 404: {"description": "No card payments yet: nothing to manage"}, **NOT_CONFIGURED})
async def portal(request: Request, principal: Principal = Depends(current_user),
                 payments: PaymentsService = Depends(get_payments)) -> PortalOut:
    """The Stripe Customer Portal (card changes, invoices, cancellation); open its `url`."""
    require_scope(request, principal)
    try:
        return PortalOut(url=await payments.portal(principal.user))
    except NoCustomer as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail={"reason": "no_customer", "message": str(exc)}) from None
    except PaymentsNotConfigured as exc:
        raise _unavailable(str(exc)) from None
    except stripe.StripeError as exc:
        raise _unavailable(f"Stripe refused or could not be reached ({type(exc).__name__})") from None


@router.get("/api/v1/payments/subscription", response_model=SubscriptionOut, responses=UNAUTHORIZED)
async def subscription(request: Request, principal: Principal = Depends(current_user),
                       payments: PaymentsService = Depends(get_payments)) -> SubscriptionOut:
    """Your plan, subscription status, renewal date and invoices, credit balance and card purchases."""
    require_scope(request, principal)
    return SubscriptionOut(**await payments.billing(principal.user))


@router.post("/api/v1/payments/webhook", response_model=WebhookOut, responses={
    400: {"description": "A bad or missing Stripe-Signature, or a body that is not a Stripe event: nothing changed"}})
async def webhook(request: Request, payments: PaymentsService = Depends(get_payments)) -> WebhookOut:
    """Stripe's events, verified with the webhook secret(s); each event id is applied once, in any order."""
    payload = await request.body()
    try:
        outcome = await payments.handle_webhook(payload, request.headers.get("Stripe-Signature"))
    except SignatureError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail={"reason": "signature", "message": str(exc)}) from None
    except BadEvent as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail={"reason": "event", "message": str(exc)}) from None
    return WebhookOut(received=True, outcome=outcome)


@router.get("/api/v1/admin/payments/events", response_model=PaymentEventsOut, responses=UNAUTHORIZED)
async def payment_events(outcome: str | None = Query(None, pattern=r"^(applied|stale|ignored|unknown_customer)$"),
                         limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000),
                         cursor: Cursor = None, admin: Principal = Depends(require_admin),
                         payments: PaymentsService = Depends(get_payments)) -> PaymentEventsOut:
    """Stripe events received, newest first; those naming no user of ours keep their whole payload."""
    offset = offset_of(offset, cursor)
    rows, total = await payments.events(outcome, limit, offset)
    return PaymentEventsOut(total=total, next=next_offset(offset, len(rows), total), data=[PaymentEventOut(
        event_id=r.event_id, type=r.type, created_s=r.created_s, owner_id=r.owner_id, outcome=r.outcome,
        customer_id=r.customer_id, received_at_ms=r.received_at_ms, payload=r.payload) for r in rows])


class AdminRefundOut(BaseModel):
    refund_id: str


class AdminPurchaseOut(PurchaseOut):
    session_id: str
    payment_intent: str | None
    debt: int


class AdminPaymentsOut(BaseModel):
    billing: SubscriptionOut
    purchases: list[AdminPurchaseOut]


@router.get("/api/v1/admin/users/{user_id}/payments", response_model=AdminPaymentsOut, responses={
    **UNAUTHORIZED, 404: {"description": "No such user"}})
async def admin_user_payments(user_id: str, admin: Principal = Depends(require_admin),
                              payments: PaymentsService = Depends(get_payments)) -> AdminPaymentsOut:
    """A user's plan, subscription, invoices and card purchases."""
    user = await payments.accounts.get_user(user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no user {user_id}")
    rows = await payments.purchases(user_id)
    return AdminPaymentsOut(billing=SubscriptionOut(**await payments.billing(user)), purchases=[AdminPurchaseOut(
        session_id=r.session_id, payment_intent=r.payment_intent, pack=r.pack, credits=r.credits,
        taken_back=r.taken_back, debt=r.debt, created_at_ms=r.created_at_ms) for r in rows])


@router.post("/api/v1/admin/users/{user_id}/payments/{session_id}/refund", response_model=AdminRefundOut,
             responses={**UNAUTHORIZED, 404: {"description": "No such purchase of this user"}, **NOT_CONFIGURED})
async def admin_refund(user_id: str, session_id: str, request: Request, admin: Principal = Depends(require_admin),
                       payments: PaymentsService = Depends(get_payments)) -> AdminRefundOut:
    """Refund a user's credit pack in full at Stripe (audited); the credits leave the balance when Stripe's
    `charge.refunded` arrives (what the balance can't give back shows as the user's credit debt)."""
    try:
        refund_id = await payments.refund_purchase(admin.user.id, user_id, session_id,
                                                   request.client.host if request.client else None)
    except UnknownPurchase:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no purchase {session_id} of user {user_id}") from None
    except PaymentsNotConfigured as exc:
        raise _unavailable(str(exc)) from None
    except stripe.StripeError as exc:
        raise _unavailable(f"Stripe refused or could not be reached ({type(exc).__name__})") from None
    return AdminRefundOut(refund_id=refund_id)


class AdminPaymentOut(BaseModel):
    kind: str  # card_invoice | card_purchase | usdt_invoice
    id: str  # the Stripe invoice, the Checkout Session, or the USDT invoice
    owner_id: str
    email: str | None
    product: str
    amount: str  # paid (or due), in `currency`
    currency: str
    status: str
    created_at_ms: int
    refundable: bool  # a card credit purchase not refunded yet: POST …/users/{owner_id}/payments/{id}/refund
    note: str


@router.get("/api/v1/admin/payments", response_model=Page[AdminPaymentOut], responses=UNAUTHORIZED)
async def admin_payments(kind: str | None = Query(None, pattern=r"^(card_invoice|card_purchase|usdt_invoice)$"),
                         limit: int = Query(50, ge=1, le=200),
                         cursor: str | None = Query(None, pattern=r"^[0-9]{1,7}$",
                                                    description="the `next` of the previous page"),
                         admin: Principal = Depends(require_admin),
                         payments: PaymentsService = Depends(get_payments)) -> Page[AdminPaymentOut]:
    """Every payment, newest first: card invoices (subscriptions), card credit purchases (refundable ones can be
    refunded) and USDT invoices with their status."""
    offset = int(cursor or 0)
    rows, more = await payments.all_payments(kind, limit, offset)
    return page([AdminPaymentOut(**r) for r in rows], offset + limit if more else None)
