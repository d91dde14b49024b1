"""SQLAlchemy tables for market data. Times are epoch milliseconds (UTC), identical on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class CandleRow(Base):
    __tablename__ = "candles"

    exchange: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    open_time: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float)
    quote_volume: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_candles_symbol_time", "symbol", "open_time"),)


class MarketSnapshotRow(Base):
    """One row per symbol per minute: what the dashboard table showed then."""

    __tablename__ = "market_snapshots"

    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    time: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    price: Mapped[float] = mapped_column(Float)
    change_pct_24h: Mapped[float | None] = mapped_column(Float, nullable=True)
    quote_volume_24h: Mapped[float] = mapped_column(Float)
    funding_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    open_interest_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    # No (symbol, time) index: the primary key is that index (migration 0007 dropped a duplicate).


class OpenInterestRow(Base):
    """Latest open interest per symbol in USD notional, from our refresher or the ingest endpoint."""

    __tablename__ = "open_interest"

    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    usd: Mapped[float] = mapped_column(Float)
    as_of: Mapped[int] = mapped_column(BigInteger)


class OpenInterestHistoryRow(Base):
    """Open interest per symbol per 5-minute snapshot (the refresher's cycle), USD notional; the last figure
    received in a snapshot's 5 minutes is kept. Pruned after PULSE_RETENTION_DAYS like candles and snapshots."""

    __tablename__ = "open_interest_history"

    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    time: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # start of the 5-minute snapshot, epoch ms
    usd: Mapped[float] = mapped_column(Float)
    as_of: Mapped[int] = mapped_column(BigInteger)  # the figure's own time: a redelivered older one never wins


class LiquidationRow(Base):
    """One forced liquidation (Binance's `!forceOrder@arr`, or the replay's synthesized ones), keyed by the event
    itself so a redelivery or a replay of it upserts. Pruned after PULSE_RETENTION_DAYS like the candles."""

    __tablename__ = "liquidations"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))  # long | short: the position liquidated
    price: Mapped[float] = mapped_column(Float)
    quantity: Mapped[float] = mapped_column(Float)
    usd: Mapped[float] = mapped_column(Float)
    time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_liquidations_symbol_time", "symbol", "time"), Index("ix_liquidations_time", "time"))
