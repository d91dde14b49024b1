"""The spike scanner under faults: a failed write, a consumer behind its clock, and crashed-and-restarted workers.

Each test compares against what an uninterrupted run raises, on FakeClock + MemoryBus, storing on SQLite and
PostgreSQL (the `runtime` fixture runs both).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from tenacity import wait_none

from marketpulse.bus import topics
from marketpulse.bus.base import Message
from marketpulse.clock import FakeClock
from marketpulse.detection.models import VolumeAlert
from marketpulse.detection.scanner import CONSUMER_GROUP, LATE_CANDLE_LIMIT_MS, SpikeScanner
from marketpulse.detection.service import VolumeAlertStore
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import MarketRecorder
from marketpulse.runtime import Runtime
from support.waiting import drained

MIN = 60_000
HOUR = 3_600_000
H = 1_760_126_400_000  # the `clock` fixture starts here: 2025-10-10 20:00 UTC
BASE_QV = 20_000.0  # a quiet minute: 60 × $20k = $1.2M an hour, so the 3× line is $3.6M
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# (symbol, minute since H) -> quote volume: BTC spikes at H:03 (SPIKE H:05, HALF H:30, FULL H+1:00); ETH at H:40
# (SPIKE H:45, FULL H+1:00); SOL at H+1:10 (SPIKE H+1:15, HALF H+1:30, FULL H+2:00).
BURSTS = {("BTCUSDT", 3): 5e6, ("ETHUSDT", 40): 5e6, ("SOLUSDT", 70): 5e6}
LAST_MINUTE = 2 * 60 + 5  # the run ends with the scan at H+2:05


def minute_candles(m: int) -> list[Candle]:
    """Every symbol's candle of minute m (m < 0: the history hour before H). Prices rise, so all are bullish."""
    t = H + m * MIN
    return [Candle(s, "1m", t, 100.0 + m, 101.0 + m, 99.0 + m, 100.5 + m, 1.0, BURSTS.get((s, m), BASE_QV))
            for s in SYMBOLS]


def payload(candles: Sequence[Candle]) -> dict[str, Any]:
    return {"interval": "1m", "candles": [msgspec.to_builtins(c) for c in candles]}


async def settle(runtime: Runtime) -> None:
    """Wait until the bus consumers (MemoryBus delivers on other tasks) have handled everything published."""
    await drained(runtime.bus)


def summary(alerts: Sequence[VolumeAlert]) -> list[tuple[Any, ...]]:
    """Everything an alert says except its id (stored alerts of two runs must agree on all of it)."""
    return sorted((a.timestamp, a.symbol, a.alert_type, a.hour_timestamp, a.current_volume, a.previous_volume,
                   a.price, a.candle_direction, a.message) for a in alerts)


class Worker:
    """The recorder and the spike scanner as `pulse worker` wires them (the scanner in a group of its own)."""

    def __init__(self, runtime: Runtime, **scanner_options: Any) -> None:
        self.recorder = MarketRecorder(runtime)
        self.scanner = SpikeScanner(runtime, grace_ms=0, group=f"{CONSUMER_GROUP}-{uuid.uuid4().hex[:8]}",
                                    group_is_ours=True, **scanner_options)

    async def start(self) -> None:
        await self.recorder.start()
        await self.scanner.start()

    async def crash(self) -> None:
        """Die like a SIGKILLed process: nothing acknowledged or cleaned up (the recorder's shared group keeps
        queueing for its successor; the scanner's own group is abandoned)."""
        assert self.scanner._task is not None
        self.scanner._task.cancel()
        for sub in self.scanner._subscriptions + self.recorder._subscriptions:
            sub.abort()  # type: ignore[attr-defined]  # MemoryBus subscriptions can die like a crashed process

    async def stop(self) -> None:
        await self.scanner.stop()
        await self.recorder.stop()


async def run_market(runtime: Runtime, clock: FakeClock, downtimes: Sequence[tuple[int, int]] = ()) -> None:
    """The replay's shape: the history hour at once at H, then one minute of candles per market minute until
    H+2:05. During each (from, to) minute range every worker is down; the market goes on."""
    worker = Worker(runtime)
    await worker.start()
    await runtime.bus.publish(topics.MARKET_CANDLES, payload([c for m in range(-60, 0) for c in minute_candles(m)]))
    await settle(runtime)
    await worker.scanner.wait_for_scan(H)
    down = {m: up for m, up in downtimes}
    m = 0
    try:
        while m < LAST_MINUTE:
            if m in down:
                await worker.crash()
                for missed in range(m, down[m]):  # the source publishes while nobody but the groups listen
                    await runtime.bus.publish(topics.MARKET_CANDLES, payload(minute_candles(missed)))
                    clock.set(H + (missed + 1) * MIN)
                m = down[m]
                worker = Worker(runtime)
                await worker.start()
                continue
            await runtime.bus.publish(topics.MARKET_CANDLES, payload(minute_candles(m)))
            await settle(runtime)
            m += 1
            clock.set(H + m * MIN)
            if m % 5 == 0:
                await asyncio.wait_for(worker.scanner.wait_for_scan(H + m * MIN), 30)
    finally:
        await worker.stop()


async def test_restarting_every_worker_mid_hour_raises_exactly_the_alerts_of_an_uninterrupted_run(
    runtime: Runtime, clock: FakeClock
) -> None:
    # Down at H:42–H:47 (the H:45 scan, ETH's SPIKE, is missed while down) and H+1:58–H+2:03 (the H+2:00 scan,
    # SOL's FULL_UPDATE, is missed while down); each time the restarted worker starts with an empty detector.
    await run_market(runtime, clock, downtimes=[(42, 47), (118, 123)])
    restarted = await VolumeAlertStore(runtime.sessions).latest(limit=500)

    await _clear_alerts(runtime)
    clock.set(H)
    await run_market(runtime, clock)
    uninterrupted = await VolumeAlertStore(runtime.sessions).latest(limit=500)

    assert [(a[1], a[2], a[0]) for a in summary(uninterrupted)] == [
        ("BTCUSDT", "SPIKE", H + 5 * MIN), ("BTCUSDT", "HALF_UPDATE", H + 30 * MIN),
        ("ETHUSDT", "SPIKE", H + 45 * MIN),
        ("BTCUSDT", "FULL_UPDATE", H + HOUR), ("ETHUSDT", "FULL_UPDATE", H + HOUR),
        ("SOLUSDT", "SPIKE", H + HOUR + 15 * MIN), ("SOLUSDT", "HALF_UPDATE", H + HOUR + 30 * MIN),
        ("SOLUSDT", "FULL_UPDATE", H + 2 * HOUR),
    ]
    assert summary(restarted) == summary(uninterrupted)


async def _clear_alerts(runtime: Runtime) -> None:
    from sqlalchemy import delete

    from marketpulse.detection.tables import DetectionScanRow, VolumeAlertRow
    from marketpulse.marketdata.tables import CandleRow

    async with runtime.sessions.begin() as session:
        for table in (VolumeAlertRow, DetectionScanRow, CandleRow):
            await session.execute(delete(table))


class FailsOnce(VolumeAlertStore):
    """The real store, except that the write of one scan time fails once (a database hiccup)."""

    def __init__(self, runtime: Runtime, fail_scan_ms: int) -> None:
        super().__init__(runtime.sessions)
        self.fail_scan_ms = fail_scan_ms
        self.failures = 0

    async def save(self, alerts: Sequence[VolumeAlert], *, scanned_ms: int | None = None) -> list[VolumeAlert]:
        if scanned_ms == self.fail_scan_ms and not self.failures:
            self.failures += 1
            raise ConnectionError("database went away")
        return await super().save(alerts, scanned_ms=scanned_ms)


async def scan_an_hour(runtime: Runtime, clock: FakeClock, store: VolumeAlertStore) -> list[dict[str, Any]]:
    """BTC spikes at H:03: the scans H:00 … H+1:00 raise SPIKE, HALF_UPDATE and FULL_UPDATE; returns what was
    published on `alerts.volume`."""
    published: list[dict[str, Any]] = []

    async def collect(message: Message) -> None:
        published.append(msgspec.to_builtins(message.data))

    subscription = await runtime.bus.subscribe(topics.ALERTS_VOLUME, f"test-{uuid.uuid4().hex[:6]}", collect)
    scanner = SpikeScanner(runtime, grace_ms=0, store=store, retry_wait=wait_none())
    await scanner.start()
    try:
        await runtime.bus.publish(topics.MARKET_CANDLES, payload([c for m in range(-60, 60)
                                                                  for c in minute_candles(m) if c.symbol == "BTCUSDT"]))
        await settle(runtime)
        clock.set(H + HOUR)  # the loop scans the 13 boundaries H:00 … H+1:00 in order
        await asyncio.wait_for(scanner.wait_for_scan(H + HOUR), 30)
        await settle(runtime)
    finally:
        await scanner.stop()
        await subscription.close()
    return published


async def test_a_failed_write_retries_the_same_scan_and_raises_the_spike_exactly_once(
    runtime: Runtime, clock: FakeClock
) -> None:
    store = FailsOnce(runtime, fail_scan_ms=H + 5 * MIN)  # the scan that raises the SPIKE
    published = await scan_an_hour(runtime, clock, store)
    assert store.failures == 1
    stored = await VolumeAlertStore(runtime.sessions).latest()

    await _clear_alerts(runtime)
    clock.set(H)
    uninterrupted = await scan_an_hour(runtime, clock, VolumeAlertStore(runtime.sessions))

    def strip(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in a.items() if k != "id"} for a in alerts]

    assert [(a["alertType"], a["timestamp"]) for a in published] == [
        ("SPIKE", H + 5 * MIN), ("HALF_UPDATE", H + 30 * MIN), ("FULL_UPDATE", H + HOUR)]
    assert strip(published) == strip(uninterrupted)  # same numbers, each published once
    assert sorted(a["id"] for a in published) == sorted(a.id for a in stored)  # published = what this scanner stored
    assert await VolumeAlertStore(runtime.sessions).last_scan() == H + HOUR


async def test_scanner_waits_for_a_history_burst_its_consumer_is_still_working_through(
    runtime: Runtime, clock: FakeClock
) -> None:
    # A worker's clock follows tickers on another consumer: on a loaded machine it can be past the late-candle
    # limit before this scanner has handled the replay's burst of history. The scan must count the whole burst.
    scanner = SpikeScanner(runtime, grace_ms=0, await_candles=True, candle_quiet_s=30)
    await scanner.start()
    try:
        await settle(runtime)  # the loop owes H:00 first
        clock.set(H + 5 * MIN + LATE_CANDLE_LIMIT_MS + MIN)  # the clock is past H:05's limit before any candle
        for m in range(-60, 5):  # one message per minute, as the replay publishes its history
            await runtime.bus.publish(topics.MARKET_CANDLES, payload(minute_candles(m)))
            await asyncio.sleep(0.01)  # a slow consumer: the scanner polls (and could give up) between messages
        await asyncio.wait_for(scanner.wait_for_scan(H + 5 * MIN), 30)
    finally:
        await scanner.stop()
    (spike,) = await VolumeAlertStore(runtime.sessions).latest()
    assert (spike.symbol, spike.timestamp) == ("BTCUSDT", H + 5 * MIN)
    assert spike.current_volume == pytest.approx(4 * BASE_QV + 5e6)  # minutes 0-4, none left out
    assert spike.previous_volume == pytest.approx(60 * BASE_QV)


async def test_two_scanners_scan_redundantly_and_each_alert_is_published_once_by_the_one_that_stored_it(
    runtime: Runtime, clock: FakeClock
) -> None:
    published: list[dict[str, Any]] = []

    async def collect(message: Message) -> None:
        published.append(msgspec.to_builtins(message.data))

    await runtime.bus.subscribe(topics.ALERTS_VOLUME, "test", collect)
    workers = [Worker(runtime), Worker(runtime)]  # two `pulse worker`s: both scanners see every candle
    for worker in workers:
        await worker.start()
    try:
        history = [c for m in range(-60, 61) for c in minute_candles(m)]
        await runtime.bus.publish(topics.MARKET_CANDLES, payload(history))
        await settle(runtime)
        clock.set(H + HOUR)
        for worker in workers:
            await asyncio.wait_for(worker.scanner.wait_for_scan(H + HOUR), 30)
        await settle(runtime)
    finally:
        for worker in workers:
            await worker.stop()
    stored = await VolumeAlertStore(runtime.sessions).latest()
    assert [(a["symbol"], a["alertType"]) for a in sorted(published, key=lambda a: (a["timestamp"], a["symbol"]))] == [
        ("BTCUSDT", "SPIKE"), ("BTCUSDT", "HALF_UPDATE"), ("ETHUSDT", "SPIKE"),
        ("BTCUSDT", "FULL_UPDATE"), ("ETHUSDT", "FULL_UPDATE")]
    assert sorted(a["id"] for a in published) == sorted(a.id for a in stored)  # once each, with the stored id
