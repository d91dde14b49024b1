"""Delivery: notification destinations and the notifications outbox.

Revision ID: 0016
Revises: 0012
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0012"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notification_destinations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(2048), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_expires_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("signing_secret", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("verified_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notification_destinations"),
    )
    op.create_index("ix_notification_destinations_owner", "notification_destinations", ["owner_id"])
    op.create_table(
        "notifications",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(36), nullable=True),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("destination_id", sa.String(36), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(36), nullable=True),
        sa.Column("lease_expires_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("provider", sa.String(16), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("credits_charged", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("idempotency_key", name="uq_notifications_idempotency_key"),
    )
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at_ms"])
    op.create_index("ix_notifications_destination", "notifications", ["destination_id", "id"])
    op.create_index("ix_notifications_owner", "notifications", ["owner_id", "id"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notification_destinations")
