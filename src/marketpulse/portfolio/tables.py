"""`portfolio_accounts` (a user's connected exchanges and wallets, keys sealed), `portfolio_holdings` (each account's
balances as last synced) and `portfolio_snapshots` (hourly values; seed 002's table).

Every row carries `owner_id`. Amounts are decimal TEXT (as in tax_transactions); USD values are floats (display and
performance figures, not tax).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class PortfolioAccountRow(Base):
    __tablename__ = "portfolio_accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # exchange | evm | solana
    name: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[str | None] = mapped_column(String(32), nullable=True)  # ccxt id
    chain: Mapped[str | None] = mapped_column(String(32), nullable=True)  # PULSE_PORTFOLIO_EVM_CHAINS name / solana
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    api_key_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_hint: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the masked key shown
    status: Mapped[str] = mapped_column(String(10))  # pending | syncing | ok | error
    last_sync_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cursors: Mapped[dict[str, Any]] = mapped_column(JSON)  # per stream: where the next sync resumes
    transactions: Mapped[int] = mapped_column(BigInteger, default=0)  # stored into tax_transactions so far
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_portfolio_accounts_owner_name"),
        Index("ix_portfolio_accounts_owner", "owner_id"),
    )


class PortfolioHoldingRow(Base):
    __tablename__ = "portfolio_holdings"

    account_id: Mapped[str] = mapped_column(String(36), ForeignKey("portfolio_accounts.id", ondelete="CASCADE"),
                                            primary_key=True)
    asset: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    amount: Mapped[str] = mapped_column(String(64))
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_portfolio_holdings_owner", "owner_id"),)


class PortfolioSnapshotRow(Base):
    __tablename__ = "portfolio_snapshots"

    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    time_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the hour it stands for
    value_usd: Mapped[float] = mapped_column(Float)
    flow_usd: Mapped[float] = mapped_column(Float)  # net deposits since the previous snapshot
    btc_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    by_asset: Mapped[dict[str, Any]] = mapped_column(JSON)  # asset → USD value
