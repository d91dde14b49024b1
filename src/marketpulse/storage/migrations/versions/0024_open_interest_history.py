"""Open-interest history: one USD figure per symbol per 5-minute snapshot, pruned with the market data.

Revision ID: 0024
Revises: 0022
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_interest_history",
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("as_of", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "time", name="pk_open_interest_history"),
    )


def downgrade() -> None:
    op.drop_table("open_interest_history")
