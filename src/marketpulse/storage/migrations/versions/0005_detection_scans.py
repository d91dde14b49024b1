"""Detection scans: the newest stored scan time per scanner, so a restarted scanner scans the boundaries it missed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_scans",
        sa.Column("scanner", sa.String(64), nullable=False),
        sa.Column("last_scan_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scanner", name="pk_detection_scans"),
    )


def downgrade() -> None:
    op.drop_table("detection_scans")
