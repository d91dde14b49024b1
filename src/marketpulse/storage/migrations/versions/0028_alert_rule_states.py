"""Alert rules' trigger state per symbol (armed, last fired), so a restarted worker resumes it.

Revision ID: 0028
Revises: 0030
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rule_states",
        sa.Column("rule_id", sa.String(36), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.Column("last_fired_ms", sa.BigInteger(), nullable=True),
        sa.Column("as_of_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_rule_states")
