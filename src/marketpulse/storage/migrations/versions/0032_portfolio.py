"""Portfolio: connected exchange accounts and wallets (keys sealed), their holdings, and hourly snapshots.

Revision ID: 0032
Revises: 0028
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0028"
branch_labels = None
depends_on = None


def _owner(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=f"fk_{table}_owner_id_users", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "portfolio_accounts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("exchange", sa.String(32), nullable=True),
        sa.Column("chain", sa.String(32), nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("api_key_sealed", sa.Text(), nullable=True),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("key_hint", sa.String(16), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("last_sync_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("cursors", sa.JSON(), nullable=False),
        sa.Column("transactions", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_portfolio_accounts"),
        _owner("portfolio_accounts"),
        sa.UniqueConstraint("owner_id", "name", name="uq_portfolio_accounts_owner_name"),
    )
    op.create_index("ix_portfolio_accounts_owner", "portfolio_accounts", ["owner_id"])
    op.create_table(
        "portfolio_holdings",
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("asset", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("amount", sa.String(64), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "asset", name="pk_portfolio_holdings"),
        sa.ForeignKeyConstraint(["account_id"], ["portfolio_accounts.id"],
                                name="fk_portfolio_holdings_account_id_portfolio_accounts", ondelete="CASCADE"),
        _owner("portfolio_holdings"),
    )
    op.create_index("ix_portfolio_holdings_owner", "portfolio_holdings", ["owner_id"])
    op.create_table(
        "portfolio_snapshots",
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.Column("value_usd", sa.Float(), nullable=False),
        sa.Column("flow_usd", sa.Float(), nullable=False),
        sa.Column("btc_usd", sa.Float(), nullable=True),
        sa.Column("by_asset", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "time_ms", name="pk_portfolio_snapshots"),
        _owner("portfolio_snapshots"),
    )


def downgrade() -> None:
    op.drop_table("portfolio_snapshots")
    op.drop_table("portfolio_holdings")
    op.drop_table("portfolio_accounts")
