"""Accounts: notification preferences (time zone, quiet hours, default channels), one row per user.

Revision ID: 0018
Revises: 0014
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_preferences",
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("quiet_hours_start", sa.String(5), nullable=True),
        sa.Column("quiet_hours_end", sa.String(5), nullable=True),
        sa.Column("channels", sa.String(64), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", name="pk_notification_preferences"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_notification_preferences_owner_id_users",
                                ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("notification_preferences")
