"""USDT paid on-chain: invoices (unique open amount per chain, a transaction used once) and the watcher's cursor.

Revision ID: 0023
Revises: 0021
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0021"
branch_labels = None
depends_on = None

OPEN = "status IN ('pending', 'confirming')"


def upgrade() -> None:
    op.create_table(
        "usdt_invoices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("chain", sa.String(32), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("product", sa.String(32), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("pack_credits", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        sa.Column("receiving_address", sa.String(42), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("amount", sa.String(80), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("paid_units", sa.String(80), nullable=True),
        sa.Column("credits_granted", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(300), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("settled_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_usdt_invoices"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_usdt_invoices_owner_id_users",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("chain", "tx_hash", name="uq_usdt_invoices_chain_tx_hash"),
    )
    op.create_index("ix_usdt_invoices_owner_id", "usdt_invoices", ["owner_id", "created_at_ms"])
    op.create_index("uq_usdt_invoices_open_amount", "usdt_invoices", ["chain", "amount"], unique=True,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    op.create_table(
        "usdt_watch_cursors",
        sa.Column("chain", sa.String(32), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_usdt_watch_cursors"),
    )


def downgrade() -> None:
    op.drop_table("usdt_watch_cursors")
    op.drop_index("uq_usdt_invoices_open_amount", table_name="usdt_invoices")
    op.drop_index("ix_usdt_invoices_owner_id", table_name="usdt_invoices")
    op.drop_table("usdt_invoices")
