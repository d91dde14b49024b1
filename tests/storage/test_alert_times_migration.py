"""Migration 0006 turns stored alert times into integer epoch ms, exactly, on SQLite and PostgreSQL — and back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from marketpulse.storage.database import create_engine
from marketpulse.storage.migrate import alembic_config, upgrade

SPIKE_AT = datetime(2025, 10, 10, 21, 5, 7, 123_000, tzinfo=UTC)
HOUR = datetime(2025, 10, 10, 21, 0, tzinfo=UTC)
SPIKE_MS, HOUR_MS = 1_760_130_307_123, 1_760_130_000_000
INSERT = text(
    "INSERT INTO volume_alerts (id, symbol, asset, current_volume, previous_volume, volume_ratio, candle_direction,"
    " alert_type, message, timestamp, hour_timestamp, is_update) VALUES (:id, 'BTCUSDT', 'BTC', 9.0, 1.0, 9.0,"
    " 'bullish', :type, 'm', :ts, :hour, false)"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    yield request.getfixturevalue("empty_pg_database")


def run(url: str, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
    async def go() -> list[Any]:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(statement, params or {})
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(go())


def index_names(url: str) -> set[str]:
    async def go() -> set[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("volume_alerts")})
        finally:
            await engine.dispose()

    return asyncio.run(go())


def as_utc(value: datetime | str) -> datetime:
    """A DateTime column read by raw SQL: SQLite hands back its text form, naive (UTC)."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def test_existing_alert_rows_become_epoch_ms_and_back(empty_db: str) -> None:
    upgrade(empty_db, "0005")
    run(empty_db, INSERT, {"id": "a1", "type": "SPIKE", "ts": SPIKE_AT, "hour": HOUR})
    run(empty_db, INSERT, {"id": "a2", "type": "HALF_UPDATE", "ts": HOUR.replace(minute=30), "hour": HOUR})

    upgrade(empty_db, "0006")
    rows = run(empty_db, text("SELECT id, timestamp, hour_timestamp FROM volume_alerts ORDER BY id"))
    assert [tuple(r) for r in rows] == [("a1", SPIKE_MS, HOUR_MS), ("a2", HOUR_MS + 1_800_000, HOUR_MS)]
    assert {"ix_volume_alerts_timestamp", "ix_volume_alerts_symbol_timestamp"} <= index_names(empty_db)
    with pytest.raises(IntegrityError):  # one SPIKE per symbol-hour still holds on the new columns
        run(empty_db, INSERT, {"id": "a3", "type": "SPIKE", "ts": SPIKE_MS + 1, "hour": HOUR_MS})

    command.downgrade(alembic_config(empty_db), "0005")
    rows = run(empty_db, text("SELECT id, timestamp FROM volume_alerts ORDER BY id"))
    back = {i: as_utc(ts) for i, ts in rows}
    assert back == {"a1": SPIKE_AT, "a2": HOUR.replace(minute=30)}
