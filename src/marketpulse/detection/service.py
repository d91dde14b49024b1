"""The alert store: save VolumeAlerts idempotently and query them, through the VolumeAlertRow model only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.detection.models import VolumeAlert
from marketpulse.detection.tables import DetectionScanRow, VolumeAlertRow
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.tables import CandleRow
from marketpulse.metrics import ALERTS_RAISED

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_UNIQUE = ["symbol", "hour_timestamp", "alert_type"]
SPIKE_SCANNER = "volume-spikes"  # the scanner's name in detection_scans


def _row_values(alert: VolumeAlert, alert_id: str) -> dict[str, Any]:
    return {
        "id": alert_id,
        "symbol": alert.symbol,
        "asset": alert.asset,
        "current_volume": alert.current_volume,
        "previous_volume": alert.previous_volume,
        "volume_ratio": alert.volume_ratio,
        "price": alert.price,
        "funding_rate": alert.funding_rate,
        "candle_direction": alert.candle_direction,
        "alert_type": alert.alert_type,
        "message": alert.message[:512],
        "timestamp": alert.timestamp,
        "hour_timestamp": alert.hour_timestamp,
        "is_update": alert.is_update,
    }


_ALERT_COLUMNS = tuple(getattr(VolumeAlertRow, name).label(name) for name in VolumeAlert.__struct_fields__)


class VolumeAlertStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def save(self, alerts: Sequence[VolumeAlert], *, scanned_ms: int | None = None) -> list[VolumeAlert]:
        """Store the alerts in one transaction; returns those newly stored (with ids), in input order.

        An alert whose (symbol, hour, type) is already stored is skipped, not an error: a rescan or a re-sent ingest
        must not raise a second SPIKE for the same symbol-hour. With `scanned_ms`, the same transaction records
        that the spike scanner's scan at that time is done (never moving it backwards: workers scan redundantly).
        """
        ids = [str(uuid.uuid4()) for _ in alerts]
        stored: set[str] = set()
        if not alerts and scanned_ms is None:
            return []
        async with self._sessions() as session, session.begin():
            insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
            if alerts:
                stmt = (
                    insert(VolumeAlertRow)
                    .values([_row_values(a, i) for a, i in zip(alerts, ids, strict=True)])
                    .on_conflict_do_nothing(index_elements=_UNIQUE)
                    .returning(VolumeAlertRow.id)
                )
                stored = set((await session.execute(stmt)).scalars())
            if scanned_ms is not None:
                progress = insert(DetectionScanRow).values(scanner=SPIKE_SCANNER, last_scan_ms=scanned_ms)
                await session.execute(progress.on_conflict_do_update(
                    index_elements=[DetectionScanRow.scanner],
                    set_={"last_scan_ms": progress.excluded.last_scan_ms},
                    where=DetectionScanRow.last_scan_ms < progress.excluded.last_scan_ms,
                ))
        new = [_with_id(a, i) for a, i in zip(alerts, ids, strict=True) if i in stored]
        for alert in new:  # committed: raised exactly once, by the process whose insert created it
            ALERTS_RAISED.labels(type=alert.alert_type).inc()
        return new

    async def last_scan(self) -> int | None:
        """The newest spike-scanner scan time whose alerts are stored (None before the first scan)."""
        async with self._sessions() as session:
            value = await session.scalar(
                select(DetectionScanRow.last_scan_ms).where(DetectionScanRow.scanner == SPIKE_SCANNER)
            )
        return None if value is None else int(value)

    async def spikes_since(self, hour_ms: int) -> list[VolumeAlert]:
        """SPIKE alerts of hours starting at or after `hour_ms` (a restarted scanner owes them their updates)."""
        stmt = select(VolumeAlertRow).where(
            VolumeAlertRow.alert_type == "SPIKE", VolumeAlertRow.hour_timestamp >= hour_ms
        )
        return await self._fetch(stmt, MAX_LIMIT * 20)

    async def latest(self, *, symbol: str | None = None, limit: int = DEFAULT_LIMIT) -> list[VolumeAlert]:
        """Newest first (by alert time; ties by symbol, then type), optionally for one symbol."""
        stmt = select(VolumeAlertRow)
        if symbol:
            stmt = stmt.where(VolumeAlertRow.symbol == symbol)
        return await self._fetch(stmt, limit)

    async def counts(self, *, symbol: str | None = None) -> dict[str, int]:
        """How many alerts are stored, per type (SPIKE, HALF_UPDATE, FULL_UPDATE), optionally for one symbol."""
        stmt = select(VolumeAlertRow.alert_type, func.count()).group_by(VolumeAlertRow.alert_type)
        if symbol:
            stmt = stmt.where(VolumeAlertRow.symbol == symbol)
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
        out = {"SPIKE": 0, "HALF_UPDATE": 0, "FULL_UPDATE": 0}
        out.update({str(kind): int(n) for kind, n in rows})
        return out

    async def since(self, since_ms: int, *, limit: int = MAX_LIMIT) -> list[VolumeAlert]:
        """Alerts raised at or after `since_ms`, newest first."""
        stmt = select(VolumeAlertRow).where(VolumeAlertRow.timestamp >= since_ms)
        return await self._fetch(stmt, limit)

    async def _fetch(self, stmt: Any, limit: int) -> list[VolumeAlert]:
        # The columns as plain tuples straight into the struct: no ORM objects, identity map or expiry to build
        # for a read that only lists (the hot `GET /api/v1/volume-alerts`).
        stmt = stmt.with_only_columns(*_ALERT_COLUMNS).order_by(
            VolumeAlertRow.timestamp.desc(), VolumeAlertRow.symbol, VolumeAlertRow.alert_type
        ).limit(limit)
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
        return [VolumeAlert(**row._mapping) for row in rows]


def _with_id(alert: VolumeAlert, alert_id: str) -> VolumeAlert:
    return msgspec.structs.replace(alert, id=alert_id)


async def stored_minutes_have_holes(sessions: async_sessionmaker[AsyncSession], start_ms: int, end_ms: int) -> bool:
    """Whether a minute is missing from the stored 1-minute candles opening in [start_ms, end_ms), counted from the
    oldest stored one (a deployment younger than the range has no hole before its first minute)."""
    stmt = select(func.min(CandleRow.open_time), func.count(func.distinct(CandleRow.open_time))).where(
        CandleRow.interval == "1m", CandleRow.open_time >= start_ms, CandleRow.open_time < end_ms
    )
    async with sessions() as session:
        oldest, minutes = (await session.execute(stmt)).one()
    return oldest is not None and int(minutes) < (end_ms - int(oldest)) // 60_000


async def stored_minutes(sessions: async_sessionmaker[AsyncSession], start_ms: int, end_ms: int) -> list[Candle]:
    """Every symbol's stored 1-minute candles opening in [start_ms, end_ms), oldest first (a scanner's warm-up)."""
    stmt = (
        select(CandleRow)
        .where(CandleRow.interval == "1m", CandleRow.open_time >= start_ms, CandleRow.open_time < end_ms)
        .order_by(CandleRow.open_time, CandleRow.symbol)
    )
    async with sessions() as session:
        rows = (await session.scalars(stmt)).all()
    return [Candle(r.symbol, r.interval, r.open_time, r.open, r.high, r.low, r.close, r.volume, r.quote_volume)
            for r in rows]
