"""Credit tables: the append-only ledger and one balance row per owner.

The balance row is what concurrent charges lock (`SELECT … FOR UPDATE` on PostgreSQL; SQLite serializes writers),
so the balance can never go below zero; the database refuses a negative balance as well (a CHECK constraint). The
ledger's (owner_id, idempotency_key) is unique: the same key can never be charged or granted twice.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class CreditBalanceRow(Base):
    __tablename__ = "credit_balances"

    owner_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger)  # the sum of the owner's ledger, kept in the same transaction
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("balance >= 0", name="not_negative"),)


class CreditEntryRow(Base):
    """One movement of credits; never updated or deleted by the application (erasing the account removes them)."""

    __tablename__ = "credit_ledger"

    # Insertion order: the history lists in the order things happened, also within one millisecond.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(12))  # grant | purchase | usage | refund | adjustment
    amount: Mapped[int] = mapped_column(BigInteger)  # signed: usage is negative
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # an admin's grant; None: the system
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_credit_ledger_owner_key"),
        Index("ix_credit_ledger_owner_id", "owner_id", "id"),
    )
