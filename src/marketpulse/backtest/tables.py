"""The backtest jobs table: one row per POST /api/v1/backtests (kept free of the engine, so the schema loads fast)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class BacktestJobRow(Base):
    __tablename__ = "backtest_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))  # queued | running | done | failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # {"stats": …, "trades": […]}
    report_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    started_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_backtest_jobs_owner_created", "owner_id", "created_at_ms"),)
