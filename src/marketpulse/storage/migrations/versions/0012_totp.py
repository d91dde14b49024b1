"""Accounts: TOTP second factor and its single-use recovery codes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "totp_factors",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_totp_factors"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_totp_factors_user_id_users", ondelete="CASCADE"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("used_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_recovery_codes"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_recovery_codes_user", "recovery_codes", ["user_id"])


def downgrade() -> None:
    op.drop_table("recovery_codes")
    op.drop_table("totp_factors")
