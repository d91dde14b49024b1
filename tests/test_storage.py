"""The schema migrates on both engines and the tables round-trip rows."""

from __future__ import annotations

from sqlalchemy import inspect, select

from marketpulse.detection.tables import VolumeAlertRow
from marketpulse.runtime import Runtime
from marketpulse.storage.models import metadata


async def test_migrations_create_every_table(runtime: Runtime) -> None:
    async with runtime.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {t.name for t in metadata.sorted_tables} <= tables


async def test_volume_alert_roundtrip_keeps_epoch_ms(runtime: Runtime) -> None:
    ts = 1_760_130_300_123  # 2025-10-10 21:05:00.123 UTC
    async with runtime.sessions() as s:
        s.add(
            VolumeAlertRow(
                id="a1", symbol="BTCUSDT", asset="BTC", current_volume=9e9, previous_volume=1e9, volume_ratio=9.0,
                price=110000.0, funding_rate=0.0001, candle_direction="bearish", alert_type="SPIKE",
                message="m", timestamp=ts, hour_timestamp=ts - ts % 3_600_000, is_update=False,
            )
        )
        await s.commit()
    async with runtime.sessions() as s:
        row = (await s.execute(select(VolumeAlertRow))).scalar_one()
    assert row.timestamp == ts and row.hour_timestamp == 1_760_130_000_000
    assert row.volume_ratio == 9.0
