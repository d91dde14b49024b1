"""Credit ledger (append-only entries and a per-owner balance that can't go negative) and failed sign-in counters
(exponential delay and account lock).

Revision ID: 0017
Revises: 0015
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_balances",
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", name="pk_credit_balances"),
        sa.CheckConstraint("balance >= 0", name="ck_credit_balances_not_negative"),
    )
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("actor_id", sa.String(36), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credit_ledger"),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_credit_ledger_owner_key"),
    )
    op.create_index("ix_credit_ledger_owner_id", "credit_ledger", ["owner_id", "id"])
    op.create_table(
        "signin_failures",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("locked_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("kind", "subject_hash", name="pk_signin_failures"),
    )


def downgrade() -> None:
    op.drop_table("signin_failures")
    op.drop_index("ix_credit_ledger_owner_id", table_name="credit_ledger")
    op.drop_table("credit_ledger")
    op.drop_table("credit_balances")
