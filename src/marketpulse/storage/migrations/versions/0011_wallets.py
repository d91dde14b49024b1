"""Accounts: wallets that sign in (Ethereum, Solana), their single-use nonces, and wallet-only users (no email).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A wallet can be the only way into an account, so the address becomes optional (batch: SQLite copies the table).
    with op.batch_alter_table("users") as batch:
        batch.alter_column("email", existing_type=sa.String(320), nullable=True)
        batch.alter_column("email_key", existing_type=sa.String(320), nullable=True)
    op.create_table(
        "wallets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("chain", sa.String(8), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wallets"),
        sa.UniqueConstraint("chain", "address", name="uq_wallets_chain_address"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_wallets_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_wallets_user", "wallets", ["user_id"])
    op.create_table(
        "wallet_nonces",
        sa.Column("nonce_hash", sa.String(64), nullable=False),
        sa.Column("chain", sa.String(8), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("used_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("nonce_hash", name="pk_wallet_nonces"),
    )


def downgrade() -> None:
    op.drop_table("wallet_nonces")
    op.drop_table("wallets")
    op.execute("DELETE FROM users WHERE email IS NULL")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("email_key", existing_type=sa.String(320), nullable=False)
        batch.alter_column("email", existing_type=sa.String(320), nullable=False)
