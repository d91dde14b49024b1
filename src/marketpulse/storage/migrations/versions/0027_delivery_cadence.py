"""Delivery cadence: when a notification's cadence was decided and the digest it is held for (plan batches, quiet
hours, the flood limit); what becomes of low-priority alerts in quiet hours and the flood limit, per user.

Revision ID: 0027
Revises: 0031
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("planned_at_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("digest_key", sa.String(20), nullable=True))
    with op.batch_alter_table("notification_preferences") as batch:
        batch.add_column(sa.Column("quiet_hours_low_priority", sa.String(4), nullable=False, server_default="hold"))
        batch.add_column(sa.Column("flood_limit_per_minute", sa.Integer(), nullable=False, server_default="20"))


def downgrade() -> None:
    with op.batch_alter_table("notification_preferences") as batch:
        batch.drop_column("flood_limit_per_minute")
        batch.drop_column("quiet_hours_low_priority")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("digest_key")
        batch.drop_column("planned_at_ms")
