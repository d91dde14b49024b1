"""BinanceSource end to end: the real source, pointed at the local fake Binance, publishing onto a MemoryBus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY

from fakes.binance_server import (
    FakeBinance,
    force_order_payload,
    mark_price_payload,
    minute_klines,
    ticker_payload,
)
from marketpulse.bus import topics
from marketpulse.bus.base import Message
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.marketdata.binance import BinanceSource
from marketpulse.marketdata.binance.frames import LIQUIDATION_STREAM, MARK_PRICE_STREAM, TICKER_STREAM
from marketpulse.marketdata.binance.source import POLL_DELAY_MS

T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC: a minute boundary
MIN = 60_000
START = T0 + 30_000  # half-way through the 20:00 minute
BTC_CLOSES = [120_000.0 + 10 * i for i in range(121)]  # 18:00 … 20:00; the 20:00 minute is still open
ETH_CLOSES = [4_000.0 + i for i in range(121)]


class RecordingSleep:
    """Stands in for asyncio.sleep: records each delay and, given a clock, moves it forward that much."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self._clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._clock is not None:
            self._clock.advance(int(seconds * 1000))
        await asyncio.sleep(0)


class BusTap:
    """Collects what the source publishes, one queue per topic."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}

    async def attach(self, bus: MemoryBus, *names: str) -> None:
        for name in names:
            queue = self.queues[name] = asyncio.Queue()

            async def handle(msg: Message, queue: asyncio.Queue[dict[str, Any]] = queue) -> None:
                await queue.put(msgspec.to_builtins(msg.data))

            await bus.subscribe(name, "test", handle)

    async def next(self, topic: str) -> dict[str, Any]:
        return await asyncio.wait_for(self.queues[topic].get(), 10)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        server.add_symbol("BTCUSDT", tick_size="0.10")
        server.add_symbol("ETHUSDT", tick_size="0.01")
        server.add_symbol("BTCUSDT_260327", contract_type="CURRENT_QUARTER")
        server.add_symbol("ETHUSDC", quote_asset="USDC")
        server.klines = {"BTCUSDT": minute_klines(T0 - 120 * MIN, BTC_CLOSES),
                         "ETHUSDT": minute_klines(T0 - 120 * MIN, ETH_CLOSES)}
        server.open_interest = {"BTCUSDT": 80_000.0, "ETHUSDT": 2_000_000.0}
        server.mark_prices = {"BTCUSDT": 120_000.0, "ETHUSDT": 4_000.0, "BTCUSDT_260327": 121_000.0}
        yield server


class Running:
    def __init__(self, fake: FakeBinance) -> None:
        self.clock = FakeClock(START)
        self.sleep = RecordingSleep()
        self.bus = MemoryBus()
        self.tap = BusTap()
        self.source = BinanceSource(fake.settings(open_interest_refresh_s=300), self.clock, sleep=self.sleep)


@pytest.fixture
async def running(fake: FakeBinance) -> AsyncIterator[Running]:
    r = Running(fake)
    await r.tap.attach(r.bus, topics.MARKET_TICKERS, topics.MARKET_CANDLES, topics.MARKET_OPEN_INTEREST,
                       topics.MARKET_LIQUIDATIONS)
    task = asyncio.create_task(r.source.run(r.bus))
    yield r
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await r.bus.close()


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("marketpulse_ws_frames_rejected_total", {"reason": reason}) or 0.0


async def test_backfills_two_hours_of_closed_1m_candles_then_each_minute_as_it_closes(
    fake: FakeBinance, running: Running
) -> None:
    msg = await running.tap.next(topics.MARKET_CANDLES)
    assert msg["interval"] == "1m"
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for c in msg["candles"]:
        by_symbol.setdefault(c["symbol"], []).append(c)
    assert sorted(by_symbol) == ["BTCUSDT", "ETHUSDT"]  # only the active USDT perpetuals
    btc = by_symbol["BTCUSDT"]
    assert [c["open_time"] for c in btc] == [T0 - 120 * MIN + i * MIN for i in range(120)]  # 20:00 is open: left out
    assert btc[-1]["close"] == BTC_CLOSES[119] and btc[-1]["open"] == BTC_CLOSES[118]
    assert btc[-1]["quote_volume"] == pytest.approx(1_000_000.0) and btc[-1]["closed"] is True
    assert ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "121"}) in fake.requests

    # 20:00 closes with its final values; 20:01 opens. The source asks just after the close.
    for symbol, closes in (("BTCUSDT", [*BTC_CLOSES[:120], 121_500.0, 121_600.0]),
                           ("ETHUSDT", [*ETH_CLOSES[:120], 4_150.0, 4_151.0])):
        fake.klines[symbol] = minute_klines(T0 - 120 * MIN, closes)
    running.clock.set(T0 + MIN + POLL_DELAY_MS)
    msg = await running.tap.next(topics.MARKET_CANDLES)
    assert [(c["symbol"], c["open_time"], c["close"]) for c in msg["candles"]] == [
        ("BTCUSDT", T0, 121_500.0), ("ETHUSDT", T0, 4_150.0)]
    assert ("/fapi/v1/klines", {"symbol": "ETHUSDT", "interval": "1m", "limit": "2"}) in fake.requests


async def test_ticker_and_mark_frames_become_market_rows_on_the_bus(fake: FakeBinance, running: Running) -> None:
    await running.tap.next(topics.MARKET_OPEN_INTEREST)  # so the rows carry it, deterministically
    await fake.wait_for_connections(1)
    tickers = [
        ticker_payload("BTCUSDT", T0 + 1_000, last=121_234.5, open_=118_000.0, high=122_000.0, low=117_500.0,
                       volume=150_000.0, quote_volume=18_123_456_789.12),
        ticker_payload("ETHUSDT", T0 + 1_000, last=4_321.07, open_=4_400.0, high=4_450.0, low=4_300.0,
                       volume=3_000_000.0, quote_volume=13_000_000_000.0),
        ticker_payload("BTCUSDT_260327", T0 + 1_000, last=122_000.0, open_=119_000.0, high=122_500.0,
                       low=118_000.0, volume=1_000.0, quote_volume=121_000_000.0),
    ]
    await fake.push(TICKER_STREAM, tickers)
    msg = await running.tap.next(topics.MARKET_TICKERS)
    assert msg["time"] == T0 + 1_000
    btc, eth = msg["rows"]
    assert btc == {
        "symbol": "BTCUSDT", "time": T0 + 1_000, "price": 121_234.5, "change_pct_24h": pytest.approx(2.741),
        "quote_volume_24h": 18_123_456_789.12, "funding_rate": None,
        "open_interest_usd": pytest.approx(80_000.0 * 120_000.0), "price_precision": 1,
    }
    assert (eth["symbol"], eth["price"], eth["change_pct_24h"], eth["price_precision"]) == (
        "ETHUSDT", 4_321.07, pytest.approx(-1.794), 2)

    await fake.push(MARK_PRICE_STREAM, [
        mark_price_payload("BTCUSDT", T0 + 2_000, mark=121_200.0, funding_rate="0.00010000"),
        mark_price_payload("ETHUSDT", T0 + 2_000, mark=4_320.0, funding_rate="-0.00025000"),
    ])
    msg = await running.tap.next(topics.MARKET_TICKERS)  # the rows whose funding changed
    assert [(r["symbol"], r["funding_rate"]) for r in msg["rows"]] == [("BTCUSDT", 0.0001), ("ETHUSDT", -0.00025)]

    await fake.push(TICKER_STREAM, [{**tickers[0], "E": T0 + 3_000, "c": "121300.0"}])
    msg = await running.tap.next(topics.MARKET_TICKERS)
    assert [(r["symbol"], r["price"], r["funding_rate"]) for r in msg["rows"]] == [("BTCUSDT", 121_300.0, 0.0001)]


async def test_force_orders_become_normalized_liquidations_on_the_bus(fake: FakeBinance, running: Running) -> None:
    """`!forceOrder@arr` rides the same `/market` connection as the tickers; Binance sends one event per frame."""
    await fake.wait_for_connections(1)
    assert LIQUIDATION_STREAM in fake.connections[0].streams and fake.connections[0].category == "market"
    await fake.push(LIQUIDATION_STREAM, force_order_payload("BTCUSDT", T0 + 5_000, side="SELL", price=119_000.0,
                                                            quantity=0.25, average_price=119_100.0))
    msg = await running.tap.next(topics.MARKET_LIQUIDATIONS)
    assert msg == {"liquidations": [{"symbol": "BTCUSDT", "side": "long", "price": 119_100.0, "quantity": 0.25,
                                     "usd": 29_775.0, "time": T0 + 5_000}]}
    # A short squeezed (BUY), a delivery contract we don't list, and a list-shaped frame are all understood.
    await fake.push(LIQUIDATION_STREAM, [
        force_order_payload("BTCUSDT_260327", T0 + 6_000, side="BUY", price=121_000.0, quantity=1.0),
        force_order_payload("ETHUSDT", T0 + 6_000, side="BUY", price=4_400.0, quantity=3.0),
    ])
    msg = await running.tap.next(topics.MARKET_LIQUIDATIONS)
    assert msg["liquidations"] == [{"symbol": "ETHUSDT", "side": "short", "price": 4_400.0, "quantity": 3.0,
                                    "usd": 13_200.0, "time": T0 + 6_000}]


async def test_open_interest_in_usd_every_refresh_interval(fake: FakeBinance, running: Running) -> None:
    msg = await running.tap.next(topics.MARKET_OPEN_INTEREST)
    # Before the stream has priced anything, one premiumIndex call gives every mark price.
    assert msg == {"asOf": START, "data": {"BTCUSDT": 80_000.0 * 120_000.0, "ETHUSDT": 2_000_000.0 * 4_000.0}}

    await fake.wait_for_connections(1)
    await fake.push(TICKER_STREAM, [ticker_payload(s, T0, last=1.0, open_=1.0, high=1.0, low=1.0, volume=1.0,
                                                   quote_volume=1.0) for s in ("BTCUSDT", "ETHUSDT")])
    await running.tap.next(topics.MARKET_TICKERS)
    await fake.push(MARK_PRICE_STREAM, [mark_price_payload("BTCUSDT", T0, mark=125_000.0, funding_rate="0.0001"),
                                        mark_price_payload("ETHUSDT", T0, mark=4_100.0, funding_rate="0.0001")])
    await running.tap.next(topics.MARKET_TICKERS)  # the mark frame has been applied
    fake.open_interest["BTCUSDT"] = 81_000.0
    running.clock.set(START + 300_000)
    msg = await running.tap.next(topics.MARKET_OPEN_INTEREST)
    assert msg["asOf"] == START + 300_000
    assert msg["data"] == {"BTCUSDT": pytest.approx(81_000.0 * 125_000.0),
                           "ETHUSDT": pytest.approx(2_000_000.0 * 4_100.0)}
    assert [p for p, _ in fake.requests].count("/fapi/v1/premiumIndex") == 1  # the stream priced the second round


async def test_malformed_and_unknown_frames_are_counted_and_the_connection_stays_up(
    fake: FakeBinance, running: Running
) -> None:
    await fake.wait_for_connections(1)
    before = {r: rejected(r) for r in ("invalid_json", "invalid_schema", "unknown_stream")}
    await fake.send_raw("{not json")
    await fake.send_raw('{"stream":"!ticker@arr","data":[{"e":"24hrTicker","s":"BTCUSDT"}]}')
    await fake.send_raw('{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT"}}')
    await fake.push(TICKER_STREAM, [ticker_payload("BTCUSDT", T0, last=1.5, open_=1.0, high=2.0, low=1.0,
                                                   volume=1.0, quote_volume=1.5)])
    msg = await running.tap.next(topics.MARKET_TICKERS)
    assert msg["rows"][0]["price"] == 1.5
    assert {r: rejected(r) - before[r] for r in before} == {"invalid_json": 1, "invalid_schema": 1, "unknown_stream": 1}
    assert fake.connects == 1 and len(fake.connections) == 1


@pytest.mark.parametrize("status", [429, 418])
async def test_rate_limits_are_honoured_with_retry_after(fake: FakeBinance, status: int) -> None:
    r = Running(fake)
    r.sleep = RecordingSleep(r.clock)
    r.source = BinanceSource(fake.settings(), r.clock, sleep=r.sleep)
    await r.tap.attach(r.bus, topics.MARKET_CANDLES)
    fake.rate_limit_next(2, retry_after_s=7, status=status)
    task = asyncio.create_task(r.source.run(r.bus))
    try:
        msg = await r.tap.next(topics.MARKET_CANDLES)
        assert len(msg["candles"]) == 240
        assert [p for p, _ in fake.requests[:3]] == ["/fapi/v1/exchangeInfo"] * 3
        assert r.sleep.delays == [7.0, 7.0]  # waited out each Retry-After, and nothing else waited
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
