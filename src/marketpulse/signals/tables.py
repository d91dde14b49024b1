"""Signal tables: configs (a strategy on a symbol and timeframe, with its webhook token), users' subscriptions
to them (the seed's "alarms"), the signal history, and the malformed payloads kept for an administrator's review.
Times are epoch milliseconds like the rest of the schema."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class SignalConfigRow(Base):
    __tablename__ = "signal_configs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(4))
    strategy: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # validated, defaults filled (core.config_params)
    params_key: Mapped[str] = mapped_column(String(500))  # params as sorted JSON: part of the unique key
    token: Mapped[str] = mapped_column(String(64))  # the webhook secret (shown to administrators)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the token: what a request finds
    active: Mapped[bool] = mapped_column(Boolean)
    computed: Mapped[bool] = mapped_column(Boolean)  # the platform computes it live on closed candles
    duplicates: Mapped[int] = mapped_column(Integer, default=0)  # repeated requests, counted (not stored)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("symbol", "timeframe", "strategy", "params_key", name="uq_signal_configs"),)


class SignalSubscriptionRow(Base):
    __tablename__ = "signal_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36))
    config_id: Mapped[str] = mapped_column(String(36))
    channels: Mapped[list[str]] = mapped_column(JSON)  # the user's destination ids
    active: Mapped[bool] = mapped_column(Boolean)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("owner_id", "config_id", name="uq_signal_subscriptions_user_config"),
                      Index("ix_signal_subscriptions_config", "config_id", "active"))


class SignalHistoryRow(Base):
    """One signal of a config: unique per (config, bar, action), so a repeated request is processed once.

    `status`: `received` (durable, waiting for the worker), `processed` (subscribers' notifications queued),
    `stale` (older than its max_lag or two bars: kept and counted, never delivered)."""

    __tablename__ = "signal_history"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    config_id: Mapped[str] = mapped_column(String(36))
    source: Mapped[str] = mapped_column(String(12))  # tradingview | computed
    action: Mapped[str] = mapped_column(String(4))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(4))
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    bar_time_ms: Mapped[int] = mapped_column(BigInteger)
    dedupe_key: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the normalized signal
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)  # the body as sent (None: computed)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    processed_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    users_notified: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)  # outbox rows queued

    __table_args__ = (UniqueConstraint("config_id", "dedupe_key", name="uq_signal_history_config_key"),
                      Index("ix_signal_history_config_time", "config_id", "received_at_ms"),
                      Index("ix_signal_history_status", "status", "received_at_ms"))


class SignalRejectRow(Base):
    """A payload refused as malformed (400) or naming an unknown market (422), kept with its reason and raw body."""

    __tablename__ = "signal_rejects"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    config_id: Mapped[str] = mapped_column(String(36))
    status_code: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    raw: Mapped[str] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_signal_rejects_time", "received_at_ms"),)
