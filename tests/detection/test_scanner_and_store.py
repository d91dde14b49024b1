"""SpikeScanner on FakeClock + MemoryBus, storing on SQLite and PostgreSQL; the alert store's queries."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from marketpulse.bus import topics
from marketpulse.bus.base import Message
from marketpulse.clock import FakeClock
from marketpulse.detection.models import VolumeAlert
from marketpulse.detection.scanner import DEFAULT_GRACE_MS, LATE_CANDLE_LIMIT_MS, SpikeScanner
from marketpulse.detection.service import VolumeAlertStore
from marketpulse.marketdata.models import Candle, MarketRow
from marketpulse.runtime import Runtime
from support.waiting import drained

MIN = 60_000
HOUR = 3_600_000
H = 1_760_126_400_000  # the `clock` fixture starts here: 2025-10-10 20:00 UTC


def candles_payload(*candles: Candle) -> dict[str, Any]:
    return {"interval": "1m", "candles": [msgspec.to_builtins(c) for c in candles]}


def minute(m: int, qv: float, symbol: str = "BTCUSDT", close: float = 101.0) -> Candle:
    return Candle(symbol, "1m", H + m * MIN, 100.0, 102.0, 99.0, close, 1.0, qv)


# Baseline hour H-1: 60 × $20k = $1.2M, so $3.6M is the 3× line.
BASELINE = candles_payload(*(minute(m - 60, 20_000.0) for m in range(60)))


async def settle(runtime: Runtime) -> None:
    """Wait until the bus consumers (MemoryBus delivers on other tasks) have handled everything published."""
    await drained(runtime.bus)


async def test_scanner_scans_on_the_clock_stores_and_publishes(runtime: Runtime, clock: FakeClock) -> None:
    published: list[dict[str, Any]] = []

    async def collect(message: Message) -> None:
        published.append(msgspec.to_builtins(message.data))

    await runtime.bus.subscribe(topics.ALERTS_VOLUME, "test", collect)
    scanner = SpikeScanner(runtime)
    await scanner.start()
    try:
        await runtime.bus.publish(topics.MARKET_CANDLES, BASELINE)
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": H, "rows": [
            msgspec.to_builtins(MarketRow("BTCUSDT", H - MIN, 100.0, 1.0, 1e9, funding_rate=0.0003))]})
        await settle(runtime)
        clock.set(H + DEFAULT_GRACE_MS)
        await scanner.wait_for_scan(H)
        assert published == []  # H:00 sees nothing of hour H

        clock.set(H + 5 * MIN)  # minutes 0–3 arrived on time; minute 4 (closing at H:05) is still on its way
        await runtime.bus.publish(topics.MARKET_CANDLES, candles_payload(*(minute(m, 500_000.0) for m in range(4))))
        await settle(runtime)
        clock.set(H + 5 * MIN + DEFAULT_GRACE_MS // 2)
        await runtime.bus.publish(topics.MARKET_CANDLES, candles_payload(minute(4, 2_000_000.0)))  # late, in grace
        await settle(runtime)
        await asyncio.wait_for(clock.parked(), 30)  # the scanner sleeps until the grace is over, not scanning
        assert scanner.last_scan_ms == H  # still waiting for the grace to pass
        clock.set(H + 5 * MIN + DEFAULT_GRACE_MS)
        await scanner.wait_for_scan(H + 5 * MIN)
        await settle(runtime)
    finally:
        await scanner.stop()

    # 4 × $0.5M + $2M = $4M ≥ 3 × $1.2M: one SPIKE, counted with the late candle.
    assert len(published) == 1
    wire = published[0]
    assert wire["symbol"] == "BTCUSDT" and wire["asset"] == "BTC" and wire["alertType"] == "SPIKE"
    assert wire["currentVolume"] == 4e6 and wire["previousVolume"] == 1.2e6
    assert wire["timestamp"] == H + 5 * MIN and wire["hourTimestamp"] == H and wire["isUpdate"] is False
    assert wire["candleDirection"] == "bullish" and wire["fundingRate"] == 0.0003 and wire["price"] == 101.0
    stored = await VolumeAlertStore(runtime.sessions).latest()
    assert [a.to_wire() for a in stored] == [wire]
    assert isinstance(wire["id"], str) and wire["id"]


async def test_scanner_emits_half_and_full_updates_across_skipped_boundaries(
    runtime: Runtime, clock: FakeClock
) -> None:
    scanner = SpikeScanner(runtime, grace_ms=0)
    await scanner.start()
    try:
        await runtime.bus.publish(topics.MARKET_CANDLES, BASELINE)
        await runtime.bus.publish(topics.MARKET_CANDLES, candles_payload(*(minute(m, 100_000.0) for m in range(60))))
        await settle(runtime)
        clock.set(H + HOUR)  # the loop catches up 13 boundaries, H:00 … H+1:00, in order
        await scanner.wait_for_scan(H + HOUR)
    finally:
        await scanner.stop()
    alerts = list(reversed(await VolumeAlertStore(runtime.sessions).latest()))
    # By H:05, 5 × $0.1M = $0.5M; the $3.6M line is crossed at H:36 → first raised by the H:40 scan:
    # no HALF_UPDATE (raised after :20), FULL_UPDATE at H+1:00 with the complete $6M.
    assert [(a.alert_type, a.timestamp) for a in alerts] == [("SPIKE", H + 40 * MIN), ("FULL_UPDATE", H + HOUR)]
    assert alerts[0].current_volume == pytest.approx(4e6) and alerts[1].current_volume == pytest.approx(6e6)


async def test_store_is_idempotent_per_symbol_hour_and_type(runtime: Runtime) -> None:
    store = VolumeAlertStore(runtime.sessions)
    spike = alert("BTCUSDT", "SPIKE", H + 5 * MIN)
    first = await store.save([spike])
    assert len(first) == 1 and first[0].id
    again = await store.save([spike, alert("BTCUSDT", "HALF_UPDATE", H + 30 * MIN)])
    assert [a.alert_type for a in again] == ["HALF_UPDATE"]
    assert sorted(a.alert_type for a in await store.latest()) == ["HALF_UPDATE", "SPIKE"]


async def test_store_queries_newest_first_with_symbol_filter_limit_and_since(runtime: Runtime) -> None:
    store = VolumeAlertStore(runtime.sessions)
    await store.save([
        alert("BTCUSDT", "SPIKE", H + 5 * MIN),
        alert("ETHUSDT", "SPIKE", H + 10 * MIN),
        alert("BTCUSDT", "FULL_UPDATE", H + HOUR),
        alert("SOLUSDT", "SPIKE", H - 3 * HOUR, hour=H - 3 * HOUR),
    ])
    newest = await store.latest()
    assert [(a.symbol, a.timestamp) for a in newest] == [
        ("BTCUSDT", H + HOUR), ("ETHUSDT", H + 10 * MIN), ("BTCUSDT", H + 5 * MIN), ("SOLUSDT", H - 3 * HOUR)]
    assert [a.alert_type for a in await store.latest(symbol="BTCUSDT")] == ["FULL_UPDATE", "SPIKE"]
    assert len(await store.latest(limit=2)) == 2
    assert [a.symbol for a in await store.since(H)] == ["BTCUSDT", "ETHUSDT", "BTCUSDT"]
    first = newest[-1]
    assert first.hour_timestamp == H - 3 * HOUR and first.price == 100.0 and first.funding_rate is None


def alert(symbol: str, kind: str, t: int, hour: int = H) -> VolumeAlert:
    return msgspec.convert({
        "symbol": symbol, "asset": symbol[:-4], "currentVolume": 4e6, "previousVolume": 1e6, "volumeRatio": 4.0,
        "price": 100.0, "fundingRate": None, "candleDirection": "bullish", "alertType": kind, "message": "m",
        "timestamp": t, "hourTimestamp": hour, "isUpdate": kind != "SPIKE",
    }, VolumeAlert)


async def test_malformed_bus_messages_are_dropped_and_the_scanner_goes_on(runtime: Runtime, clock: FakeClock) -> None:
    scanner = SpikeScanner(runtime, grace_ms=0)
    await scanner.start()
    try:
        await runtime.bus.publish(topics.MARKET_CANDLES, BASELINE)
        await runtime.bus.publish(topics.MARKET_CANDLES, {"interval": "1m", "candles": [{"symbol": "BTCUSDT"}]})
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": H, "rows": [{"price": "not a number"}]})
        await runtime.bus.publish(topics.MARKET_CANDLES, candles_payload(minute(0, 5e6)))
        await settle(runtime)
        clock.set(H + 5 * MIN)
        await scanner.wait_for_scan(H + 5 * MIN)
    finally:
        await scanner.stop()
    assert [a.alert_type for a in await VolumeAlertStore(runtime.sessions).latest()] == ["SPIKE"]


async def test_scanner_that_awaits_candles_holds_a_scan_until_its_own_candles_reach_the_boundary(
    runtime: Runtime, clock: FakeClock
) -> None:
    # A worker's clock following tickers can run ahead of this scanner's candle consumer: the scan for H:05 must
    # not run on minutes 0-3 only when minute 4 is merely late on the bus.
    scanner = SpikeScanner(runtime, grace_ms=0, await_candles=True)
    await scanner.start()
    try:
        await runtime.bus.publish(topics.MARKET_CANDLES, BASELINE)
        await runtime.bus.publish(topics.MARKET_CANDLES, candles_payload(*(minute(i, 1e6) for i in range(4))))
        await settle(runtime)
        clock.set(H + 5 * MIN)
        await settle(runtime)
        assert scanner.last_scan_ms is None or scanner.last_scan_ms < H + 5 * MIN  # held: watermark is H:04
        await runtime.bus.publish(topics.MARKET_CANDLES, candles_payload(minute(4, 1e6)))
        await scanner.wait_for_scan(H + 5 * MIN)
    finally:
        await scanner.stop()
    (alert,) = await VolumeAlertStore(runtime.sessions).latest()
    assert alert.alert_type == "SPIKE" and alert.current_volume == pytest.approx(5e6)  # all five minutes counted


async def test_scanner_that_awaits_candles_still_scans_when_candles_stop(runtime: Runtime, clock: FakeClock) -> None:
    # Stopped, not late: the clock is past the limit and no candle message came for candle_quiet_s (real) seconds.
    scanner = SpikeScanner(runtime, grace_ms=0, await_candles=True, candle_quiet_s=0.2)
    await scanner.start()
    try:
        await runtime.bus.publish(topics.MARKET_CANDLES, BASELINE)
        await runtime.bus.publish(topics.MARKET_CANDLES, candles_payload(minute(0, 5e6)))
        await settle(runtime)
        clock.set(H + 5 * MIN + LATE_CANDLE_LIMIT_MS)  # an outage: no candle closes at H:05, the limit passes
        await scanner.wait_for_scan(H + 5 * MIN)
    finally:
        await scanner.stop()
    assert [a.alert_type for a in await VolumeAlertStore(runtime.sessions).latest()] == ["SPIKE"]
