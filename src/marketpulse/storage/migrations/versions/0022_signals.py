"""Strategy signals: configs with their webhook token, subscriptions, the signal history (unique per config, bar
and action) and the malformed payloads kept for review.

Revision ID: 0022
Revises: 0017
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signal_configs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("params_key", sa.String(500), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("computed", sa.Boolean(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signal_configs"),
        sa.UniqueConstraint("token_hash", name="uq_signal_configs_token_hash"),
        sa.UniqueConstraint("symbol", "timeframe", "strategy", "params_key", name="uq_signal_configs"),
    )
    op.create_table(
        "signal_subscriptions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signal_subscriptions"),
        sa.UniqueConstraint("owner_id", "config_id", name="uq_signal_subscriptions_user_config"),
    )
    op.create_index("ix_signal_subscriptions_config", "signal_subscriptions", ["config_id", "active"])
    op.create_table(
        "signal_history",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(12), nullable=False),
        sa.Column("action", sa.String(4), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("bar_time_ms", sa.BigInteger(), nullable=False),
        sa.Column("dedupe_key", sa.String(40), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("processed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("users_notified", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signal_history"),
        sa.UniqueConstraint("config_id", "dedupe_key", name="uq_signal_history_config_key"),
    )
    op.create_index("ix_signal_history_config_time", "signal_history", ["config_id", "received_at_ms"])
    op.create_index("ix_signal_history_status", "signal_history", ["status", "received_at_ms"])
    op.create_table(
        "signal_rejects",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("config_id", sa.String(36), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("client", sa.String(64), nullable=True),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signal_rejects"),
    )
    op.create_index("ix_signal_rejects_time", "signal_rejects", ["received_at_ms"])


def downgrade() -> None:
    op.drop_table("signal_rejects")
    op.drop_table("signal_history")
    op.drop_table("signal_subscriptions")
    op.drop_table("signal_configs")
