"""USDT invoice tables: one row per invoice (owner-scoped) and the watcher's cursor per chain.

A transaction pays one invoice at most: `(chain, tx_hash)` is unique. Two open invoices on a chain never share an
amount (a partial unique index over pending and confirming invoices), so a transfer's value names its invoice.
Amounts are decimal text of token units: an 18-decimal token's $100 does not fit a 64-bit integer.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base

OPEN = "status IN ('pending', 'confirming')"


class UsdtInvoiceRow(Base):
    __tablename__ = "usdt_invoices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    chain: Mapped[str] = mapped_column(String(32))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(8))  # plan | credits
    product: Mapped[str] = mapped_column(String(32))  # the plan's or the pack's name
    price_cents: Mapped[int] = mapped_column(Integer)
    pack_credits: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(42))
    receiving_address: Mapped[str] = mapped_column(String(42))
    decimals: Mapped[int] = mapped_column(Integer)
    amount: Mapped[str] = mapped_column(String(80))  # token units, exact
    status: Mapped[str] = mapped_column(String(12))  # core.Status
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    paid_units: Mapped[str | None] = mapped_column(String(80), nullable=True)
    credits_granted: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    settled_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        UniqueConstraint("chain", "tx_hash", name="uq_usdt_invoices_chain_tx_hash"),
        Index("ix_usdt_invoices_owner_id", "owner_id", "created_at_ms"),
        Index("uq_usdt_invoices_open_amount", "chain", "amount", unique=True, sqlite_where=text(OPEN),
              postgresql_where=text(OPEN)),
    )


class UsdtCursorRow(Base):
    """The last block whose Transfer logs the watcher has read, per chain."""

    __tablename__ = "usdt_watch_cursors"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger)


class UsdtPlanTermRow(Base):
    """A plan paid in USDT: a paid period per invoice (`PLAN_PERIOD_MS`), renewed by paying a new invoice for the
    same plan before it ends (the new period follows on); at its end, unless renewed, the plan drops to free."""

    __tablename__ = "usdt_plan_terms"

    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    plan: Mapped[str] = mapped_column(String(32))
    starts_at_ms: Mapped[int] = mapped_column(BigInteger)
    ends_at_ms: Mapped[int] = mapped_column(BigInteger)
    ended_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the end was applied
    last_invoice_id: Mapped[str] = mapped_column(String(36))
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_usdt_plan_terms_due", "ended_at_ms", "ends_at_ms"),)
