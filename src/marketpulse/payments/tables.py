"""Payment tables. User-owned rows carry `owner_id` (so account export and erasure find them); times are epoch ms,
Stripe's own `created` times are kept in seconds as Stripe sends them.

`stripe_events` is what makes each Stripe event apply once: its id is the primary key, inserted in the same
transaction as the event's effects, so a repeat (Stripe retries, or sends twice) finds it and changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class StripeCustomerRow(Base):
    __tablename__ = "stripe_customers"

    owner_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class StripeSubscriptionRow(Base):
    __tablename__ = "stripe_subscriptions"

    subscription_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    customer_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    price_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    plan: Mapped[str | None] = mapped_column(String(32), nullable=True)
    current_period_end_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    state_created_s: Mapped[int] = mapped_column(BigInteger)  # `created` of the event that set this state
    grace_ends_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # a renewal failed
    dropped_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # grace ran out: plan is free
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_stripe_subscriptions_owner", "owner_id"),
                      Index("ix_stripe_subscriptions_grace", "grace_ends_at_ms"))


class StripeInvoiceRow(Base):
    __tablename__ = "stripe_invoices"

    invoice_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    subscription_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    amount_due: Mapped[int] = mapped_column(BigInteger)  # cents
    amount_paid: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    hosted_invoice_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_s: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_stripe_invoices_owner", "owner_id", "created_s"),)


class CreditPurchaseRow(Base):
    """A credit pack paid by card; a refund of its charge takes the credits back (what the balance can't give back
    is kept as `debt`)."""

    __tablename__ = "credit_purchases"

    session_id: Mapped[str] = mapped_column(String(255), primary_key=True)  # the Checkout Session
    owner_id: Mapped[str] = mapped_column(String(36))
    pack: Mapped[str] = mapped_column(String(32))
    credits: Mapped[int] = mapped_column(Integer)
    payment_intent: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    taken_back: Mapped[int] = mapped_column(Integer, default=0)  # credits refunded so far
    debt: Mapped[int] = mapped_column(Integer, default=0)  # of those, what the balance could not give
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_credit_purchases_owner", "owner_id"),)


class StripeEventRow(Base):
    __tablename__ = "stripe_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    created_s: Mapped[int] = mapped_column(BigInteger)
    owner_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # None: no user of ours
    outcome: Mapped[str] = mapped_column(String(32))  # applied | stale | ignored | unknown_customer
    customer_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    # Kept whole only when it names no user of ours, so an administrator can look into it.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (Index("ix_stripe_events_outcome", "outcome", "received_at_ms"),)


class ApiUsageRow(Base):
    """API calls a user made in a month (`YYYY-MM`, UTC): each API process adds what it counted since its last
    flush (an upsert adding to `calls`), so any number of API processes share one count."""

    __tablename__ = "api_usage"

    owner_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class MeterReportRow(Base):
    """One Billing Meter Event: the excess calls (start_calls, end_calls] of a user's month. Written before it is
    sent (`sent_at_ms` None until Stripe answered), so a batch that crashed half-way is sent again, with the same
    identifier and timestamp, by whoever holds the lease next. (owner, period, start) is unique: two reporters
    can't both cover the same calls."""

    __tablename__ = "api_meter_reports"

    identifier: Mapped[str] = mapped_column(String(160), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    period: Mapped[str] = mapped_column(String(7))
    customer_id: Mapped[str] = mapped_column(String(255))
    start_calls: Mapped[int] = mapped_column(BigInteger)
    end_calls: Mapped[int] = mapped_column(BigInteger)
    timestamp_s: Mapped[int] = mapped_column(BigInteger)  # the event's time at Stripe (kept for a retry)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    sent_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (UniqueConstraint("owner_id", "period", "start_calls", name="uq_api_meter_reports_start"),
                      Index("ix_api_meter_reports_unsent", "sent_at_ms"))
