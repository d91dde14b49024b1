"""`tax_transactions` (a user's imported rows) and `tax_reports` (one job per request, its summary and CSVs).

Every row carries `owner_id`. Amounts are stored as decimal TEXT, not NUMERIC: SQLite would hand NUMERIC back as a
float, and the engine never sees a float. `dedupe_key` (unique per owner) is what makes importing a file twice a no-op.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class TaxTransactionRow(Base):
    __tablename__ = "tax_transactions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str] = mapped_column(String(64))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(16))
    asset: Mapped[str] = mapped_column(String(32))
    amount: Mapped[str] = mapped_column(String(64))
    price_usd: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fee_usd: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(64))
    tx_id: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))  # generic | coinbase | …: the file layout it came from
    imported_at_ms: Mapped[int] = mapped_column(BigInteger)
    line: Mapped[int] = mapped_column(Integer)  # in its file: same-millisecond rows keep the file's order

    __table_args__ = (
        UniqueConstraint("owner_id", "dedupe_key", name="uq_tax_transactions_owner_dedupe_key"),
        Index("ix_tax_transactions_owner_time", "owner_id", "timestamp_ms"),
    )


class TaxReportRow(Base):
    __tablename__ = "tax_reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    year: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(8))
    per_wallet: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(10))  # queued | running | done | failed
    progress: Mapped[int] = mapped_column(Integer)  # percent
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    form8949_csv: Mapped[str | None] = mapped_column(Text, nullable=True)
    schedule_d_csv: Mapped[str | None] = mapped_column(Text, nullable=True)
    gains_csv: Mapped[str | None] = mapped_column(Text, nullable=True)
    income_csv: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    finished_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_tax_reports_owner_created", "owner_id", "created_at_ms"),)


class TaxTransferLinkRow(Base):
    """A user's decision on one transfer_out → transfer_in pair, by the two transactions' dedupe keys (stable across
    re-imports): `confirmed` (these are one transfer between my accounts) or `undone` (they are not)."""

    __tablename__ = "tax_transfer_links"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    out_key: Mapped[str] = mapped_column(String(64))
    in_key: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(10))  # confirmed | undone
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("owner_id", "out_key", "in_key",
                                       name="uq_tax_transfer_links_owner_out_key_in_key"),)
