"""Watchlists, their symbols, and volume-alert subscriptions (owner-scoped, erased with the user).

Revision ID: 0014
Revises: 0016
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0016"
branch_labels = None
depends_on = None


def _owner(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=f"fk_{table}_owner_id_users", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "watchlists",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_watchlists"),
        _owner("watchlists"),
        sa.UniqueConstraint("owner_id", "name", name="uq_watchlists_owner_name"),
    )
    op.create_table(
        "watchlist_items",
        sa.Column("watchlist_id", sa.String(36), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("added_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("watchlist_id", "symbol", name="pk_watchlist_items"),
        sa.ForeignKeyConstraint(["watchlist_id"], ["watchlists.id"], name="fk_watchlist_items_watchlist_id_watchlists",
                                ondelete="CASCADE"),
        _owner("watchlist_items"),
    )
    op.create_index("ix_watchlist_items_owner", "watchlist_items", ["owner_id"])
    op.create_table(
        "volume_alert_subscriptions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_volume_alert_subscriptions"),
        _owner("volume_alert_subscriptions"),
        sa.UniqueConstraint("owner_id", "symbol", name="uq_volume_alert_subscriptions_owner_symbol"),
    )


def downgrade() -> None:
    op.drop_table("volume_alert_subscriptions")
    op.drop_table("watchlist_items")
    op.drop_table("watchlists")
