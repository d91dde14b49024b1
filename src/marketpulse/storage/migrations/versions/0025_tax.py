"""Tax: imported transactions (deduplicated per owner) and report jobs with their CSVs (owner-scoped).

Revision ID: 0025
Revises: 0023
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0023"
branch_labels = None
depends_on = None


def _owner(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=f"fk_{table}_owner_id_users", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "tax_transactions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("amount", sa.String(64), nullable=False),
        sa.Column("price_usd", sa.String(64), nullable=True),
        sa.Column("fee_usd", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("tx_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("imported_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tax_transactions"),
        _owner("tax_transactions"),
        sa.UniqueConstraint("owner_id", "dedupe_key", name="uq_tax_transactions_owner_dedupe_key"),
    )
    op.create_index("ix_tax_transactions_owner_time", "tax_transactions", ["owner_id", "timestamp_ms"])
    op.create_table(
        "tax_reports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("per_wallet", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("form8949_csv", sa.Text(), nullable=True),
        sa.Column("schedule_d_csv", sa.Text(), nullable=True),
        sa.Column("gains_csv", sa.Text(), nullable=True),
        sa.Column("income_csv", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tax_reports"),
        _owner("tax_reports"),
    )
    op.create_index("ix_tax_reports_owner_created", "tax_reports", ["owner_id", "created_at_ms"])


def downgrade() -> None:
    op.drop_table("tax_reports")
    op.drop_table("tax_transactions")
