"""SQLAlchemy tables for paper trading. Every row carries its `owner_id`; times are epoch milliseconds (UTC)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class PaperAccountRow(Base):
    __tablename__ = "paper_accounts"

    # One account per owner until multi-account arrives; the owner is the key so a race can't create two.
    owner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan: Mapped[str] = mapped_column(String(16))
    starting_balance: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    fees_paid: Mapped[float] = mapped_column(Float, default=0.0)
    # The daily-loss circuit breaker: equity at the first event of the UTC day, and the halt it may trigger.
    day_start_ms: Mapped[int] = mapped_column(BigInteger)
    day_start_equity: Mapped[float] = mapped_column(Float)
    halted_until_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class PaperPositionRow(Base):
    __tablename__ = "paper_positions"

    owner_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("paper_accounts.owner_id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The book the position belongs to: "" for the owner's manual trades, else the deployment that holds it, so a
    # strategy's position and the owner's own on the same symbol are two positions (part of the key: never NULL).
    deployment_id: Mapped[str] = mapped_column(String(36), primary_key=True, default="", server_default="")
    quantity: Mapped[float] = mapped_column(Float)  # signed: > 0 long, < 0 short
    avg_price: Mapped[float] = mapped_column(Float)
    mark_price: Mapped[float] = mapped_column(Float)
    opened_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_paper_positions_symbol", "symbol"),)


class PaperOrderRow(Base):
    __tablename__ = "paper_orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), ForeignKey("paper_accounts.owner_id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[float] = mapped_column(Float)
    limit_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    time_in_force: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(String(256), nullable=True)  # why cancelled/expired
    active_from_ms: Mapped[int] = mapped_column(BigInteger)  # first bar open time it may fill on
    expires_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    deployment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # A limit marketable when placed takes liquidity (taker fee); decided at placement against the mark.
    taker: Mapped[bool] = mapped_column(default=False, server_default=false())
    fill_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    fee: Mapped[float | None] = mapped_column(Float, nullable=True)
    filled_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_paper_orders_owner_created", "owner_id", "created_at_ms"),
        # The fill loop asks "which open orders are there for these symbols?" on every closed candle.
        Index("ix_paper_orders_status_symbol", "status", "symbol"),
    )


class PaperFillRow(Base):
    __tablename__ = "paper_fills"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), ForeignKey("paper_accounts.owner_id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(36), ForeignKey("paper_orders.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float)
    time_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_paper_fills_owner_time", "owner_id", "time_ms"),)


class PaperDeploymentRow(Base):
    __tablename__ = "paper_deployments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), ForeignKey("paper_accounts.owner_id", ondelete="CASCADE"))
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    interval: Mapped[str] = mapped_column(String(8))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    cash: Mapped[float] = mapped_column(Float)  # the deployment's engine starts with this equity (backtest --cash)
    size: Mapped[float] = mapped_column(Float)  # fraction of equity per entry, as the backtester's --size
    long_only: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10))  # running | stopped
    last_bar_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    stopped_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The runner's state, so a restarted worker resumes instead of starting flat beside a position it opened:
    # the engine arrays and the forming bar (every minute, ~2 kB), the order map, and the bar history (per bar).
    engine_snapshot: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    history_snapshot: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    order_map: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)  # engine order id → paper id

    __table_args__ = (Index("ix_paper_deployments_status", "status"),)
