"""Paper trading: accounts (with the daily-loss breaker's state), positions, orders, fills, strategy deployments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

def _owner_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["owner_id"], ["paper_accounts.owner_id"], name=f"fk_{table}_owner_id_paper_accounts", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "paper_accounts",
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("plan", sa.String(16), nullable=False),
        sa.Column("starting_balance", sa.Float(), nullable=False),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.Column("fees_paid", sa.Float(), nullable=False),
        sa.Column("day_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("day_start_equity", sa.Float(), nullable=False),
        sa.Column("halted_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", name="pk_paper_accounts"),
    )
    op.create_table(
        "paper_positions",
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("avg_price", sa.Float(), nullable=False),
        sa.Column("mark_price", sa.Float(), nullable=False),
        sa.Column("opened_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "symbol", name="pk_paper_positions"),
        _owner_fk("paper_positions"),
    )
    op.create_index("ix_paper_positions_symbol", "paper_positions", ["symbol"])
    op.create_table(
        "paper_orders",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("limit_price", sa.Float(), nullable=True),
        sa.Column("stop_price", sa.Float(), nullable=True),
        sa.Column("time_in_force", sa.String(4), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("active_from_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("deployment_id", sa.String(36), nullable=True),
        sa.Column("fill_price", sa.Float(), nullable=True),
        sa.Column("fee", sa.Float(), nullable=True),
        sa.Column("filled_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_paper_orders"),
        _owner_fk("paper_orders"),
    )
    op.create_index("ix_paper_orders_owner_created", "paper_orders", ["owner_id", "created_at_ms"])
    op.create_index("ix_paper_orders_status_symbol", "paper_orders", ["status", "symbol"])
    op.create_table(
        "paper_fills",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("fee", sa.Float(), nullable=False),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_paper_fills"),
        _owner_fk("paper_fills"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["paper_orders.id"], name="fk_paper_fills_order_id_paper_orders", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_paper_fills_owner_time", "paper_fills", ["owner_id", "time_ms"])
    op.create_table(
        "paper_deployments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("size", sa.Float(), nullable=False),
        sa.Column("long_only", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("last_bar_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("stopped_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("engine_snapshot", sa.LargeBinary(), nullable=True),
        sa.Column("history_snapshot", sa.LargeBinary(), nullable=True),
        sa.Column("order_map", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_paper_deployments"),
        _owner_fk("paper_deployments"),
    )
    op.create_index("ix_paper_deployments_status", "paper_deployments", ["status"])


def downgrade() -> None:
    op.drop_table("paper_deployments")
    op.drop_table("paper_fills")
    op.drop_table("paper_orders")
    op.drop_table("paper_positions")
    op.drop_table("paper_accounts")
