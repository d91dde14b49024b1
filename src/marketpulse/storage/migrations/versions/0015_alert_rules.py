"""Rule alerts: the users' alert rules and the history of their matches, unique per (rule, triggering event).

Revision ID: 0015
Revises: 0013
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fired_count", sa.Integer(), nullable=False),
        sa.Column("last_fired_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
    )
    op.create_index("ix_alert_rules_owner", "alert_rules", ["owner_id", "created_at_ms"])
    op.create_table(
        "alert_history",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(36), nullable=False),
        sa.Column("rule_name", sa.String(100), nullable=False),
        sa.Column("event_key", sa.String(160), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("field", sa.String(80), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("message", sa.String(500), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_history"),
        sa.UniqueConstraint("rule_id", "event_key", name="uq_alert_history_rule_event"),
    )
    op.create_index("ix_alert_history_owner_time", "alert_history", ["owner_id", "time_ms"])


def downgrade() -> None:
    op.drop_table("alert_history")
    op.drop_table("alert_rules")
