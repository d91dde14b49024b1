"""The market store on SQLite and PostgreSQL: idempotent batched upserts, exact hourly aggregation, retention,
and the recorder fed from the bus."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, func, select

from marketpulse.bus import Message, topics
from marketpulse.marketdata.models import Candle, MarketRow
from marketpulse.marketdata.store import (
    MarketRecorder,
    load_candles,
    prune,
    save_candles,
    save_snapshots,
)
from marketpulse.marketdata.synthetic import synthesize_minutes
from marketpulse.marketdata.tables import CandleRow, MarketSnapshotRow
from marketpulse.runtime import Runtime
from support.topics import message
from support.waiting import drained, parked

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC
HOUR_CANDLE = Candle("BTCUSDT", "1h", T0, 121_500.0, 121_900.4, 113_000.1, 114_200.4, 9_876.543, 1_151_234_567.89)


def minute(symbol: str, open_time: int, price: float = 100.0, volume: float = 1.0) -> Candle:
    return Candle(symbol, "1m", open_time, price, price + 1, price - 1, price + 0.5, volume, volume * price)


async def count(runtime: Runtime, model: type[CandleRow] | type[MarketSnapshotRow]) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_save_candles_upserts_on_the_primary_key(runtime: Runtime) -> None:
    first = [minute("BTCUSDT", T0), minute("ETHUSDT", T0)]
    assert await save_candles(runtime.sessions, "replay", first) == 2
    changed = [minute("BTCUSDT", T0, price=200.0), minute("BTCUSDT", T0 + MINUTE)]
    await save_candles(runtime.sessions, "replay", changed)
    await save_candles(runtime.sessions, "replay", changed)  # a redelivered message changes nothing
    await save_candles(runtime.sessions, "binance", first[:1])  # another exchange is another row
    assert await count(runtime, CandleRow) == 4
    loaded = await load_candles(runtime.sessions, "BTCUSDT", "1m", exchange="replay")
    assert [(c.open_time, c.open) for c in loaded] == [(T0, 200.0), (T0 + MINUTE, 100.0)]


async def test_hundreds_of_symbols_are_one_transaction(runtime: Runtime) -> None:
    begins: list[object] = []
    event.listen(runtime.engine.sync_engine, "begin", begins.append)
    candles = [minute(f"S{i:03d}USDT", T0) for i in range(600)]
    await save_candles(runtime.sessions, "replay", candles)
    rows = [MarketRow(f"S{i:03d}USDT", T0, 1.0, 0.5, 1e6, 0.0001, 2e6) for i in range(600)]
    await save_snapshots(runtime.sessions, T0 + 12_345, rows)
    assert len(begins) == 2
    assert await count(runtime, CandleRow) == 600 and await count(runtime, MarketSnapshotRow) == 600


async def test_snapshots_are_one_row_per_symbol_per_minute(runtime: Runtime) -> None:
    row = MarketRow("BTCUSDT", T0, 114_000.0, -5.2, 3e10, 0.0001, 7e9)
    await save_snapshots(runtime.sessions, T0 + 5_000, [row])
    await save_snapshots(runtime.sessions, T0 + 50_000, [MarketRow("BTCUSDT", T0, 113_000.0, -6.0, 3e10)])
    await save_snapshots(runtime.sessions, T0 + MINUTE, [row])
    async with runtime.sessions() as session:
        stored = (await session.scalars(select(MarketSnapshotRow).order_by(MarketSnapshotRow.time))).all()
    assert [(s.time, s.price) for s in stored] == [(T0, 113_000.0), (T0 + MINUTE, 114_000.0)]
    assert stored[0].funding_rate is None and stored[1].open_interest_usd == 7e9


async def test_hourly_history_aggregates_stored_minutes_exactly(runtime: Runtime) -> None:
    minutes = synthesize_minutes(HOUR_CANDLE, seed=7, precision=1).candles()
    next_hour = synthesize_minutes(
        Candle("BTCUSDT", "1h", T0 + HOUR, 114_200.4, 115_000.0, 110_000.0, 112_000.0, 5_000.0, 5.6e8), seed=7,
        precision=1).candles()[:30]
    await save_candles(runtime.sessions, "replay", minutes + next_hour)
    hours = await load_candles(runtime.sessions, "BTCUSDT", "1h", T0, T0 + 2 * HOUR, limit=10)
    assert len(hours) == 2
    complete, partial = hours
    assert complete == HOUR_CANDLE  # every field, exactly, and closed
    assert partial.open_time == T0 + HOUR and partial.closed is False and partial.open == 114_200.4
    assert partial.volume == sum(c.volume for c in next_hour)
    # limit keeps the newest; start inside an hour still starts at that hour's first minute
    assert await load_candles(runtime.sessions, "BTCUSDT", "1h", limit=1) == [partial]
    assert (await load_candles(runtime.sessions, "BTCUSDT", "1h", T0 + 10 * MINUTE, T0 + HOUR))[0] == HOUR_CANDLE
    fifteen = await load_candles(runtime.sessions, "BTCUSDT", "15m", T0, T0 + HOUR)
    assert [c.open_time for c in fifteen] == [T0 + k * 15 * MINUTE for k in range(4)]
    assert sum(c.quote_volume for c in fifteen) == pytest.approx(HOUR_CANDLE.quote_volume, rel=1e-12)


async def test_stored_hourly_candles_are_served_as_they_are(runtime: Runtime) -> None:
    await save_candles(runtime.sessions, "binance", [HOUR_CANDLE])
    assert await load_candles(runtime.sessions, "BTCUSDT", "1h") == [HOUR_CANDLE]
    assert await load_candles(runtime.sessions, "ETHUSDT", "1h") == []
    with pytest.raises(ValueError, match="interval"):
        await load_candles(runtime.sessions, "BTCUSDT", "1y")


async def test_prune_deletes_only_what_retention_drops(runtime: Runtime) -> None:
    now = T0 + 40 * DAY
    await save_candles(runtime.sessions, "replay", [minute("BTCUSDT", T0), minute("BTCUSDT", now - 29 * DAY)])
    await save_snapshots(runtime.sessions, T0, [MarketRow("BTCUSDT", T0, 1.0, 0.0, 1.0)])
    await save_snapshots(runtime.sessions, now, [MarketRow("BTCUSDT", now, 1.0, 0.0, 1.0)])
    assert await prune(runtime.sessions, now, retention_days=30) == 2
    assert await prune(runtime.sessions, now, retention_days=30) == 0
    assert [c.open_time for c in await load_candles(runtime.sessions, "BTCUSDT", "1m")] == [now - 29 * DAY]
    assert await count(runtime, MarketSnapshotRow) == 1


def candles_message(open_time: int, symbols: list[str]) -> Message:
    data = {"interval": "1m", "candles": [
        {"symbol": s, "interval": "1m", "open_time": open_time, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
         "volume": 10.0, "quote_volume": 15.0, "closed": True} for s in symbols]}
    return message(topics.MARKET_CANDLES, data)


def tickers_message(time_ms: int, prices: dict[str, float]) -> Message:
    rows = [{"symbol": s, "time": time_ms, "price": p, "change_pct_24h": 1.0, "quote_volume_24h": 1e7,
             "funding_rate": 0.0001, "open_interest_usd": 5e6, "price_precision": 2} for s, p in prices.items()]
    return message(topics.MARKET_TICKERS, {"time": time_ms, "rows": rows}, "2-0")


async def test_recorder_snapshots_each_symbol_once_per_market_minute(runtime: Runtime) -> None:
    recorder = MarketRecorder(runtime)
    await recorder.on_tickers(tickers_message(T0 + 1_000, {"BTCUSDT": 1.0}))
    await recorder.on_tickers(tickers_message(T0 + 16_000, {"BTCUSDT": 2.0, "ETHUSDT": 3.0}))  # ETH first seen
    assert await count(runtime, MarketSnapshotRow) == 0  # the minute is written when it is over
    await recorder.on_tickers(tickers_message(T0 + MINUTE, {"BTCUSDT": 4.0}))
    await recorder.on_tickers(tickers_message(T0 + 30_000, {"BTCUSDT": 9.0}))  # late redelivery: ignored
    await recorder.stop()  # flushes the open minute
    async with runtime.sessions() as session:
        stored = (await session.scalars(select(MarketSnapshotRow).order_by(MarketSnapshotRow.time,
                                                                           MarketSnapshotRow.symbol))).all()
    assert [(s.symbol, s.time, s.price) for s in stored] == [
        ("BTCUSDT", T0, 1.0), ("ETHUSDT", T0, 3.0), ("BTCUSDT", T0 + MINUTE, 4.0)]


async def test_recorder_prunes_by_market_time_once_an_hour(runtime: Runtime) -> None:
    runtime.settings.retention_days = 1
    recorder = MarketRecorder(runtime)
    await recorder.on_candles(candles_message(T0, ["BTCUSDT"]))
    # a new market hour: prunes before (T0 + 1 day − 1 min) − 1 day, which keeps T0
    await recorder.on_candles(candles_message(T0 + DAY - 2 * MINUTE, ["BTCUSDT"]))
    assert await count(runtime, CandleRow) == 2  # the wall clock (2026) would have pruned both
    await recorder.on_candles(candles_message(T0 + DAY + HOUR, ["ETHUSDT"]))  # a new market hour: prune
    assert [c.open_time for c in await load_candles(runtime.sessions, "BTCUSDT", "1m")] == [T0 + DAY - 2 * MINUTE]


async def test_recorder_persists_from_the_bus(runtime: Runtime) -> None:
    recorder = MarketRecorder(runtime)
    await recorder.start()
    try:
        symbols = [f"S{i:03d}USDT" for i in range(300)]
        await runtime.bus.publish(topics.MARKET_CANDLES, candles_message(T0, symbols).data)
        await runtime.bus.publish(topics.MARKET_TICKERS, tickers_message(T0, {"BTCUSDT": 1.0}).data)
        await runtime.bus.publish(topics.MARKET_TICKERS, tickers_message(T0 + MINUTE, {"BTCUSDT": 2.0}).data)
        await drained(runtime.bus)
    finally:
        await recorder.stop()
    assert await count(runtime, CandleRow) == 300
    assert await count(runtime, MarketSnapshotRow) == 2  # stop flushed the second minute
    stored = await load_candles(runtime.sessions, "S123USDT", "1m", exchange=runtime.settings.source)
    assert stored == [Candle("S123USDT", "1m", T0, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0)]


async def test_replayed_minutes_are_stored_and_served_as_the_real_hour(runtime: Runtime) -> None:
    """Source → bus → recorder → store → history: the 20:00 hour comes back as the sample's own hourly candle."""
    from marketpulse.clock import FakeClock
    from marketpulse.marketdata.replay import ReplaySource, ReplayTape
    from marketpulse.marketdata.sample import usdm_perp_1h_path

    tape = ReplayTape.load(usdm_perp_1h_path(), symbols=8, seed=7)
    clock = FakeClock(T0 + 50 * MINUTE)  # 20:50: the backfill brings 19:00-20:49
    recorder = MarketRecorder(runtime)
    await recorder.start()
    task = asyncio.create_task(ReplaySource(runtime.settings, clock=clock, tape=tape).run(runtime.bus))
    try:
        await parked(clock, task)
        while clock.now_ms() < T0 + HOUR + MINUTE:
            clock.advance(15_000)
            await parked(clock, task)  # the source published what is due by now
        await drained(runtime.bus)  # and the recorder stored it
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await recorder.stop()
    real = tape.series["BTCUSDT"]
    expected = real.candle(int(real.index(T0) or 0))
    served = await load_candles(runtime.sessions, "BTCUSDT", "1h", T0 - HOUR, T0 + 2 * HOUR)
    assert [c.open_time for c in served] == [T0 - HOUR, T0, T0 + HOUR]
    assert served[1] == expected and served[2].closed is False
    assert await count(runtime, MarketSnapshotRow) >= 8 * 10  # one per symbol per market minute
