"""The schema migrates on both engines, the migrations create exactly what the models declare (every table), and
the tables round-trip rows."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from marketpulse.detection.tables import VolumeAlertRow
from marketpulse.runtime import Runtime
from marketpulse.storage.models import metadata


async def test_migrations_create_every_table(runtime: Runtime) -> None:
    async with runtime.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {t.name for t in metadata.sorted_tables} <= tables


async def test_migrations_match_the_models_for_every_table(runtime: Runtime) -> None:
    """Alembic's autogenerate comparison over the whole metadata: no table, column, type, index or constraint of
    the models is missing from (or extra in) what the migrations built. A model change without its migration
    fails here on both engines."""

    def compare(conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return list(compare_metadata(ctx, metadata))

    async with runtime.engine.connect() as conn:
        diffs = await conn.run_sync(compare)
    assert diffs == []


async def test_snapshots_have_no_index_duplicating_their_primary_key(runtime: Runtime) -> None:
    def snapshot_keys(conn: Any) -> tuple[list[str], list[list[str]]]:
        inspector = inspect(conn)
        primary = inspector.get_pk_constraint("market_snapshots")["constrained_columns"]
        return primary, [list(ix["column_names"]) for ix in inspector.get_indexes("market_snapshots")]

    async with runtime.engine.connect() as conn:
        primary, indexes = await conn.run_sync(snapshot_keys)
    assert primary == ["symbol", "time"]
    assert [primary[: len(ix)] == ix for ix in indexes] == [False] * len(indexes)  # none is a prefix of the key


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
