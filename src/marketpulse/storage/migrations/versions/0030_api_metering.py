"""Metered API calls: each user's calls per month, and the meter events reported to Stripe for the excess; plans
paid in USDT: each user's paid term.

Revision ID: 0030
Revises: 0026
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_usage",
        sa.Column("owner_id", sa.String(36), primary_key=True),
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "api_meter_reports",
        sa.Column("identifier", sa.String(160), primary_key=True),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("start_calls", sa.BigInteger(), nullable=False),
        sa.Column("end_calls", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_s", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("owner_id", "period", "start_calls", name="uq_api_meter_reports_start"),
    )
    op.create_index("ix_api_meter_reports_unsent", "api_meter_reports", ["sent_at_ms"])
    op.create_table(
        "usdt_plan_terms",
        sa.Column("owner_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("starts_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("ends_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("ended_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_invoice_id", sa.String(36), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_usdt_plan_terms_due", "usdt_plan_terms", ["ended_at_ms", "ends_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_usdt_plan_terms_due", table_name="usdt_plan_terms")
    op.drop_table("usdt_plan_terms")
    op.drop_index("ix_api_meter_reports_unsent", table_name="api_meter_reports")
    op.drop_table("api_meter_reports")
    op.drop_table("api_usage")
