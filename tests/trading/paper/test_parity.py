"""Parity: a strategy deployed to paper, fed closed 1m candles one by one through the bus, makes exactly the
trades `Backtest(...).run()` makes on the same candles aggregated to the deployment's interval.

Real BTCUSDT minutes from the bundled sample (6 quiet hours on 2025-10-09), EMA(3)/EMA(10)
crossover on 5-minute bars, long and short, 4 bps taker fees — the paper account's own fee setting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import numpy as np
import pytest
from sqlalchemy import select

from marketpulse.backtest import Backtest, Trade
from marketpulse.bus import Message, topics
from marketpulse.clock import FakeClock
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.klines_csv import read_klines_frame
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.sample import btcusdt_spot_1m_path
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.deployments import DeploymentSpec
from marketpulse.trading.paper.runner import PaperRunner
from marketpulse.trading.paper.tables import PaperFillRow, PaperOrderRow

from .helpers import Collector, listed

MINUTES = 360
PARAMS = {"fast": 3, "slow": 10}



@pytest.fixture(autouse=True)
async def market(runtime: Runtime) -> None:
    await listed(runtime, "BTCUSDT")  # deployments are refused on symbols with no market data

def minutes() -> CandleFrame:
    frame = read_klines_frame(btcusdt_spot_1m_path(), symbol="BTCUSDT", interval="1m")["BTCUSDT"]
    assert frame.time[0] % 300_000 == 0 and np.all(np.diff(frame.time[:MINUTES]) == 60_000)  # aligned, no gaps
    return frame.slice(0, MINUTES)


def five_minute_bars(m: CandleFrame) -> CandleFrame:
    """An independent aggregation (reshape), not the deployment's own aggregator."""
    n = len(m) // 5 * 5
    return CandleFrame(
        m.time[:n:5], m.open[:n:5], m.high[:n].reshape(-1, 5).max(1), m.low[:n].reshape(-1, 5).min(1),
        m.close[4:n:5], m.volume[:n].reshape(-1, 5).sum(1), m.symbol, "5m",
    )


def as_candles(m: CandleFrame) -> list[Candle]:
    return [Candle("BTCUSDT", "1m", int(m.time[i]), float(m.open[i]), float(m.high[i]), float(m.low[i]),
                   float(m.close[i]), float(m.volume[i]), float(m.volume[i] * m.close[i])) for i in range(len(m))]


class CountingRunner(PaperRunner):
    """The real runner, counting handled candle messages so the test can feed them strictly one by one."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.done = asyncio.Event()

    async def on_candles_message(self, msg: Message) -> None:
        await super().on_candles_message(msg)
        self.done.set()


@pytest.fixture
async def runner(runtime: Runtime) -> AsyncIterator[CountingRunner]:
    r = CountingRunner(runtime)
    await r.start()
    yield r
    await r.stop()


async def feed(runtime: Runtime, clock: FakeClock, runner: CountingRunner, candles: list[Candle]) -> None:
    for c in candles:
        clock.set(c.open_time + 60_000)  # the market's time when this minute closes
        runner.done.clear()
        await runtime.bus.publish(topics.MARKET_CANDLES, {"interval": "1m", "candles": [msgspec.to_builtins(c)]})
        await asyncio.wait_for(runner.done.wait(), timeout=10)


async def test_paper_deployment_trades_exactly_like_the_backtest(
    runtime: Runtime, clock: FakeClock, runner: CountingRunner
) -> None:
    m = minutes()
    fee_bps = runtime.settings.paper_taker_fee_bps
    expected = Backtest(five_minute_bars(m), "ema_cross", PARAMS, cash=10_000.0, fee_bps=fee_bps).run().trades
    assert len(expected) >= 5  # enough round trips (long and short) to mean something
    assert {t.side for t in expected} == {"long", "short"}

    published = await Collector.on(runtime.bus, topics.PAPER_FILLS)
    row = await runner.deployments.deploy(
        "default", DeploymentSpec("ema_cross", "BTCUSDT", "5m", PARAMS, cash=10_000.0)
    )
    await feed(runtime, clock, runner, as_candles(m))

    # 1. The engine inside the deployment: the very same trades, field for field, bit for bit.
    got = runner.deployments.trades(row.id)
    assert got == expected

    # 2. What reached the paper account through the service and the store: one fill per entry and per exit.
    async with runtime.sessions() as s:
        fills = (await s.execute(select(PaperFillRow).where(PaperFillRow.owner_id == "default"))).scalars().all()
        orders = (await s.execute(select(PaperOrderRow).where(PaperOrderRow.deployment_id == row.id))).scalars().all()
    assert sorted(fill_key(f) for f in fills) == sorted(expected_fills(expected))
    assert {o.status for o in orders} == {"filled"}
    events = [await published.next() for _ in fills]  # every fill went out on the bus, once
    assert sorted(e["fill_id"] for e in events) == sorted(f.id for f in fills)
    account = await runner.paper.account("default")
    closed = [t for t in expected if t.exit_time is not None]
    assert account["realized_pnl"] == pytest.approx(sum(t.pnl + t.fees for t in closed), rel=1e-9)
    assert account["fees"] == pytest.approx(sum(t.fees for t in expected), rel=1e-9)


async def test_a_restarted_worker_resumes_the_deployment_and_keeps_parity(
    runtime: Runtime, clock: FakeClock, runner: CountingRunner
) -> None:
    m = minutes()
    expected = Backtest(five_minute_bars(m), "ema_cross", PARAMS, cash=10_000.0,
                        fee_bps=runtime.settings.paper_taker_fee_bps).run().trades
    row = await runner.deployments.deploy(
        "default", DeploymentSpec("ema_cross", "BTCUSDT", "5m", PARAMS, cash=10_000.0)
    )
    candles = as_candles(m)
    half = 232  # inside the first long (entered at minute 200), two minutes into a forming 5m bar
    await feed(runtime, clock, runner, candles[:half])
    before = runner.deployments.trades(row.id)
    assert before and before[-1].exit_time is None  # the restart happens with a position open
    await runner.stop()

    # A new process: its own services, nothing in memory, the same database and bus.
    restarted = Runtime.open(runtime.settings, clock=clock, bus=runtime.bus)
    second = CountingRunner(restarted)
    await second.start()
    try:
        await feed(restarted, clock, second, candles[half:])
        assert second.deployments.trades(row.id) == expected
        async with restarted.sessions() as s:
            fills = (await s.execute(select(PaperFillRow))).scalars().all()
        assert sorted(fill_key(f) for f in fills) == sorted(expected_fills(expected))
    finally:
        await second.stop()
        await restarted.engine.dispose()


def fill_key(f: PaperFillRow) -> tuple[int, str, float, float]:
    return (f.time_ms, f.side, f.price, f.quantity)


def expected_fills(trades: list[Trade]) -> list[tuple[int, str, float, float]]:
    out = []
    for t in trades:
        enter, leave = ("buy", "sell") if t.side == "long" else ("sell", "buy")
        out.append((t.entry_time, enter, t.entry_price, t.size))
        if t.exit_time is not None:
            assert t.exit_price is not None
            out.append((t.exit_time, leave, t.exit_price, t.size))
    return out
