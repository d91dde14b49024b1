"""The VolumeAlert table, with the seed's fields (snake_case here, camelCase on the wire)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.storage.database import Base


class VolumeAlertRow(Base):
    __tablename__ = "volume_alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64))
    asset: Mapped[str] = mapped_column(String(64))
    current_volume: Mapped[float] = mapped_column(Float)
    previous_volume: Mapped[float] = mapped_column(Float)
    volume_ratio: Mapped[float] = mapped_column(Float)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    funding_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    candle_direction: Mapped[str] = mapped_column(String(8))
    alert_type: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(512))
    # Epoch ms (UTC), like every other stored time: no conversion on the way in or out, and it sorts the same.
    timestamp: Mapped[int] = mapped_column(BigInteger)
    hour_timestamp: Mapped[int] = mapped_column(BigInteger)
    is_update: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        # One SPIKE (and one of each update) per symbol-hour, enforced by the store, not just the detector.
        UniqueConstraint("symbol", "hour_timestamp", "alert_type", name="uq_volume_alerts_symbol_hour_type"),
        Index("ix_volume_alerts_timestamp", "timestamp"),
        Index("ix_volume_alerts_symbol_timestamp", "symbol", "timestamp"),
    )


class DetectionScanRow(Base):
    """The newest scan time whose alerts are stored, per scanner: where a restarted scanner resumes scanning.

    Written in the same transaction as that scan's alerts, so "scanned" never runs ahead of "stored"."""

    __tablename__ = "detection_scans"

    scanner: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_scan_ms: Mapped[int] = mapped_column(BigInteger)
