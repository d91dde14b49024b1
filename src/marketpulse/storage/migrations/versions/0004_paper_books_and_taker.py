"""Paper: a position per (owner, symbol, book) so deployments hold their own; marketable limits flagged taker.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing positions were all booked together; they become the owner's manual book ("").
    with op.batch_alter_table("paper_positions") as batch:
        batch.add_column(sa.Column("deployment_id", sa.String(36), nullable=False, server_default=""))
        batch.drop_constraint("pk_paper_positions", type_="primary")
        batch.create_primary_key("pk_paper_positions", ["owner_id", "symbol", "deployment_id"])
    with op.batch_alter_table("paper_orders") as batch:
        batch.add_column(sa.Column("taker", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("paper_orders") as batch:
        batch.drop_column("taker")
    op.execute("DELETE FROM paper_positions WHERE deployment_id <> ''")
    with op.batch_alter_table("paper_positions") as batch:
        batch.drop_constraint("pk_paper_positions", type_="primary")
        batch.create_primary_key("pk_paper_positions", ["owner_id", "symbol"])
        batch.drop_column("deployment_id")
