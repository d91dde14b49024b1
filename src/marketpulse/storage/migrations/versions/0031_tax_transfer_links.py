"""Tax: the user's decisions on transfer matching (a transfer_out/transfer_in pair confirmed, or undone).

Revision ID: 0031
Revises: 0032
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tax_transfer_links",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("out_key", sa.String(64), nullable=False),
        sa.Column("in_key", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tax_transfer_links"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_tax_transfer_links_owner_id_users",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("owner_id", "out_key", "in_key", name="uq_tax_transfer_links_owner_out_key_in_key"),
    )


def downgrade() -> None:
    op.drop_table("tax_transfer_links")
