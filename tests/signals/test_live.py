"""UT Bot computed live: real BTCUSDT minutes fed through the worker's live path (closed 1m candles as the bus
carries them) raise exactly the signals the offline indicator gives on the same bars, stored as source `computed`
and processed like a webhook's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from indicators.market_samples import btc_candles  # tests/indicators helpers
from marketpulse import indicators
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.resample import Buckets
from marketpulse.runtime import Runtime
from marketpulse.signals.core import config_params
from marketpulse.signals.tables import SignalHistoryRow
from marketpulse.signals.worker import ComputedSignals

pytestmark = pytest.mark.asyncio
MINUTES = 2_400


def candles(frame: CandleFrame) -> list[Candle]:
    return [Candle("BTCUSDT", "1m", int(frame.time[i]), float(frame.open[i]), float(frame.high[i]),
                   float(frame.low[i]), float(frame.close[i]), float(frame.volume[i]), 0.0) for i in range(len(frame))]


def offline(frame: CandleFrame, key_value: float, atr_period: int, heikin_ashi: bool) -> list[tuple[int, str]]:
    _, buy, sell = indicators.ut_bot(frame.open, frame.high, frame.low, frame.close, key_value=key_value,
                                     atr_period=atr_period, heikin_ashi=heikin_ashi)
    out = [(int(frame.time[i]), "buy") for i in np.flatnonzero(buy)]
    out += [(int(frame.time[i]), "sell") for i in np.flatnonzero(sell)]
    return sorted(out)


async def test_live_ut_bot_gives_the_offline_indicators_signals(runtime: Runtime, shared_data: Path) -> None:
    frame = btc_candles(shared_data, rows=MINUTES)
    start = int(np.argmax(frame.time % Interval.M15.ms == 0))  # begin on a 15-minute boundary
    frame = frame.slice(start, len(frame))
    signals = runtime.services.signals
    one = await signals.create_config(symbol="BTCUSDT", timeframe="1m", strategy="ut_bot", computed=True,
                                      params=config_params("ut_bot", {"key_value": 1.0, "atr_period": 10}))
    fifteen = await signals.create_config(symbol="BTCUSDT", timeframe="15m", strategy="ut_bot", computed=True,
                                          params=config_params("ut_bot", {"key_value": 2.0, "atr_period": 5,
                                                                          "heikin_ashi": True}))
    await signals.create_config(symbol="ETHUSDT", timeframe="1m", strategy="ut_bot", computed=True,
                                params=config_params("ut_bot", {}))  # another market: nothing from BTC minutes
    computed = ComputedSignals(signals, runtime.bus, runtime.leases, ttl_ms=15_000, clock=runtime.clock)
    await computed.reload()
    rows = candles(frame)
    for i in range(0, len(rows), 60):  # the bus's batches
        await computed.on_candles(rows[i:i + 60])
    await computed.on_candles(rows[-60:])  # a redelivered batch adds nothing
    async with runtime.sessions() as s:
        stored = list(await s.scalars(select(SignalHistoryRow)))
    got = {cid: sorted((r.bar_time_ms, r.action) for r in stored if r.config_id == cid) for cid in (one.id, fifteen.id)}
    assert {r.source for r in stored} == {"computed"} and {r.status for r in stored} == {"received"}
    expected_1m = offline(frame, 1.0, 10, False)
    assert len(expected_1m) > 20  # real minutes cross the stop many times
    assert got[one.id] == expected_1m
    buckets = Buckets(frame.time, Interval.M1, Interval.M15)
    bars = buckets.frame(frame).take(np.flatnonzero(buckets.complete))
    expected_15m = offline(bars, 2.0, 5, True)
    assert len(expected_15m) > 3
    assert got[fifteen.id] == expected_15m
    assert len(stored) == len(expected_1m) + len(expected_15m)


async def test_a_worker_taking_over_starts_from_the_stored_candles(runtime: Runtime, shared_data: Path) -> None:
    from marketpulse.marketdata.store import save_candles

    frame = btc_candles(shared_data, rows=1_500)
    stored, fresh = candles(frame)[:900], candles(frame)[900:]
    await save_candles(runtime.sessions, "binance", stored)  # what the recorder kept before the takeover
    signals = runtime.services.signals
    row = await signals.create_config(symbol="BTCUSDT", timeframe="1m", strategy="ut_bot", computed=True,
                                      params=config_params("ut_bot", {"key_value": 1.0, "atr_period": 10}))
    computed = ComputedSignals(signals, runtime.bus, runtime.leases, ttl_ms=15_000, clock=runtime.clock)
    await computed.reload()
    assert len(computed.live[row.id][1].bars) == 900
    await computed.on_candles(fresh)
    async with runtime.sessions() as s:
        got = sorted((r.bar_time_ms, r.action) for r in await s.scalars(select(SignalHistoryRow)))
    expected = [(t, a) for t, a in offline(frame, 1.0, 10, False) if t >= fresh[0].open_time]
    assert len(expected) > 5 and got == expected
