"""Liquidations: one row per forced liquidation (Binance's `!forceOrder@arr` or the replay's), pruned with the
market data.

Revision ID: 0033
Revises: 0027
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "liquidations",
        sa.Column("id", sa.String(160), nullable=False),
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_liquidations"),
    )
    op.create_index("ix_liquidations_symbol_time", "liquidations", ["symbol", "time"])
    op.create_index("ix_liquidations_time", "liquidations", ["time"])


def downgrade() -> None:
    op.drop_index("ix_liquidations_time", table_name="liquidations")
    op.drop_index("ix_liquidations_symbol_time", table_name="liquidations")
    op.drop_table("liquidations")
