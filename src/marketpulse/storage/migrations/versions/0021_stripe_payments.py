"""Stripe payments: customers, subscriptions, invoices, credit-pack purchases, and every event received (by id,
so each applies once).

Revision ID: 0021
Revises: 0024
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_customers",
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", name="pk_stripe_customers"),
        sa.UniqueConstraint("customer_id", name="uq_stripe_customers_customer_id"),
    )
    op.create_table(
        "stripe_subscriptions",
        sa.Column("subscription_id", sa.String(255), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("price_id", sa.String(255), nullable=True),
        sa.Column("plan", sa.String(32), nullable=True),
        sa.Column("current_period_end_ms", sa.BigInteger(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("state_created_s", sa.BigInteger(), nullable=False),
        sa.Column("grace_ends_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("dropped_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name="pk_stripe_subscriptions"),
    )
    op.create_index("ix_stripe_subscriptions_owner", "stripe_subscriptions", ["owner_id"])
    op.create_index("ix_stripe_subscriptions_grace", "stripe_subscriptions", ["grace_ends_at_ms"])
    op.create_table(
        "stripe_invoices",
        sa.Column("invoice_id", sa.String(255), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("hosted_invoice_url", sa.String(1024), nullable=True),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name="pk_stripe_invoices"),
    )
    op.create_index("ix_stripe_invoices_owner", "stripe_invoices", ["owner_id", "created_s"])
    op.create_table(
        "credit_purchases",
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("pack", sa.String(32), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("payment_intent", sa.String(255), nullable=True),
        sa.Column("taken_back", sa.Integer(), nullable=False),
        sa.Column("debt", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_credit_purchases"),
        sa.UniqueConstraint("payment_intent", name="uq_credit_purchases_payment_intent"),
    )
    op.create_index("ix_credit_purchases_owner", "credit_purchases", ["owner_id"])
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("created_s", sa.BigInteger(), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=True),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_stripe_events"),
    )
    op.create_index("ix_stripe_events_outcome", "stripe_events", ["outcome", "received_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_stripe_events_outcome", table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_index("ix_credit_purchases_owner", table_name="credit_purchases")
    op.drop_table("credit_purchases")
    op.drop_index("ix_stripe_invoices_owner", table_name="stripe_invoices")
    op.drop_table("stripe_invoices")
    op.drop_index("ix_stripe_subscriptions_grace", table_name="stripe_subscriptions")
    op.drop_index("ix_stripe_subscriptions_owner", table_name="stripe_subscriptions")
    op.drop_table("stripe_subscriptions")
    op.drop_table("stripe_customers")
