"""Delivery tables: a user's destinations (verified addresses on a channel) and notifications, which are the
transactional outbox: a row is written in the matching transaction (`outbox.enqueue`) as `queued`, claimed by a
dispatcher under a lease, and ends `sent`, `dead` (retries spent or a permanent refusal) or `skipped` (no credits).
`failed` is a row whose last attempt failed and that waits for its next one. The rows stay as the user's
notification history. Times are epoch milliseconds like the rest of the schema."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class DestinationRow(Base):
    __tablename__ = "notification_destinations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(16))  # see delivery.core.CHANNELS
    address: Mapped[str] = mapped_column(String(2048))  # email, chat id, phone, URL, push subscription JSON…
    state: Mapped[str] = mapped_column(String(10))  # pending | verified | failed (a permanent refusal: see last_error)
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SHA-256 of the verification code
    code_expires_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    signing_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)  # webhook HMAC key
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    verified_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_notification_destinations_owner", "owner_id"),)


class NotificationRow(Base):
    __tablename__ = "notifications"

    # Insertion order is delivery order per destination (a user's alerts arrive in the order they matched).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    rule_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    event_key: Mapped[str] = mapped_column(String(200))
    # SHA-256 of (rule or source, event, destination): unique, so enqueueing one event twice adds nothing; sent to
    # the receiver (`Idempotency-Key`) so a redelivery after a crash is recognisable there.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    destination_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # None: the destination is gone
    channel: Mapped[str] = mapped_column(String(16))
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(8))  # queued | sent | failed | dead | skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at_ms: Mapped[int] = mapped_column(BigInteger)
    claimed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)  # the dispatcher holding it
    lease_expires_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    provider: Mapped[str | None] = mapped_column(String(16), nullable=True)  # who delivered it (a fallback?)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    credits_charged: Mapped[int] = mapped_column(Integer, default=0)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    sent_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    read_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the owner read it (in-app centre)
    # When a dispatcher decided its cadence (None: not yet); `digest_key` is the release time (epoch ms, as text) of
    # the digest it is held for: one message per (destination, digest_key), sent when it is due (delivery.cadence).
    planned_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    digest_key: Mapped[str | None] = mapped_column(String(20), nullable=True)

    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at_ms"),
        Index("ix_notifications_destination", "destination_id", "id"),
        Index("ix_notifications_owner", "owner_id", "id"),
    )
