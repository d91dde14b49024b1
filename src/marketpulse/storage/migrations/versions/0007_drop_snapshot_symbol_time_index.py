"""Drop `ix_market_snapshots_symbol_time`: it indexes (symbol, time), exactly the primary key's columns in the same
order, so every snapshot write (120+ rows a market minute, the busiest table) maintained a second copy of the key
for no query the primary key does not already serve.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_market_snapshots_symbol_time", table_name="market_snapshots")


def downgrade() -> None:
    op.create_index("ix_market_snapshots_symbol_time", "market_snapshots", ["symbol", "time"])
