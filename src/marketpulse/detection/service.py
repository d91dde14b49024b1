"""The alert store: save VolumeAlerts idempotently and query them, through the VolumeAlertRow model only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.detection.models import VolumeAlert
from marketpulse.detection.tables import VolumeAlertRow

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_UNIQUE = ["symbol", "hour_timestamp", "alert_type"]


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return round(aware.timestamp() * 1000)


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
        "timestamp": ms_to_datetime(alert.timestamp),
        "hour_timestamp": ms_to_datetime(alert.hour_timestamp),
        "is_update": alert.is_update,
    }


def _alert_from_row(row: VolumeAlertRow) -> VolumeAlert:
    return VolumeAlert(
        id=row.id,
        symbol=row.symbol,
        asset=row.asset,
        current_volume=row.current_volume,
        previous_volume=row.previous_volume,
        volume_ratio=row.volume_ratio,
        price=row.price,
        funding_rate=row.funding_rate,
        candle_direction=row.candle_direction,  # type: ignore[arg-type]  # stored from the Literal
        alert_type=row.alert_type,  # type: ignore[arg-type]
        message=row.message,
        timestamp=datetime_to_ms(row.timestamp),
        hour_timestamp=datetime_to_ms(row.hour_timestamp),
        is_update=row.is_update,
    )


class VolumeAlertStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def save(self, alerts: Sequence[VolumeAlert]) -> list[VolumeAlert]:
        """Store the alerts in one transaction; returns those newly stored (with ids), in input order.

        An alert whose (symbol, hour, type) is already stored is skipped, not an error: a rescan or a re-sent ingest
        must not raise a second SPIKE for the same symbol-hour.
        """
        if not alerts:
            return []
        ids = [str(uuid.uuid4()) for _ in alerts]
        async with self._sessions() as session, session.begin():
            insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
            stmt = (
                insert(VolumeAlertRow)
                .values([_row_values(a, i) for a, i in zip(alerts, ids, strict=True)])
                .on_conflict_do_nothing(index_elements=_UNIQUE)
                .returning(VolumeAlertRow.id)
            )
            stored = set((await session.execute(stmt)).scalars())
        return [_with_id(a, i) for a, i in zip(alerts, ids, strict=True) if i in stored]

    async def latest(self, *, symbol: str | None = None, limit: int = DEFAULT_LIMIT) -> list[VolumeAlert]:
        """Newest first (by alert time; ties by symbol, then type), optionally for one symbol."""
        stmt = select(VolumeAlertRow)
        if symbol:
            stmt = stmt.where(VolumeAlertRow.symbol == symbol)
        return await self._fetch(stmt, limit)

    async def since(self, since_ms: int, *, limit: int = MAX_LIMIT) -> list[VolumeAlert]:
        """Alerts raised at or after `since_ms`, newest first."""
        stmt = select(VolumeAlertRow).where(VolumeAlertRow.timestamp >= ms_to_datetime(since_ms))
        return await self._fetch(stmt, limit)

    async def _fetch(self, stmt: Any, limit: int) -> list[VolumeAlert]:
        stmt = stmt.order_by(
            VolumeAlertRow.timestamp.desc(), VolumeAlertRow.symbol, VolumeAlertRow.alert_type
        ).limit(limit)
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).scalars().all()
        return [_alert_from_row(r) for r in rows]


def _with_id(alert: VolumeAlert, alert_id: str) -> VolumeAlert:
    return msgspec.structs.replace(alert, id=alert_id)
