"""Deployment snapshots survive upgrades: a snapshot written by the previous format (the raw engine arrays in an
npz, committed as a fixture) still restores, and the deployment then trades exactly as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketpulse.backtest import Engine, EngineSettings, Trade
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.klines_csv import read_klines_frame
from marketpulse.marketdata.library import interval_ms
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.sample import btcusdt_spot_1m_path
from marketpulse.strategies import get_strategy
from marketpulse.trading.paper.strategy_runner import StrategyRunner

FIXTURES = Path(__file__).parent / "fixtures"
STRATEGY, PARAMS, INTERVAL = "ema_cross", {"fast": 5, "slow": 20}, "15m"
CUT = 1447  # minutes before the snapshot: mid-bucket, after a few closed trades, with a position open


@pytest.fixture(scope="module")
def minutes() -> CandleFrame:
    frame = read_klines_frame(btcusdt_spot_1m_path(), symbol="BTCUSDT", interval="1m")["BTCUSDT"]
    return frame.slice(0, 2 * 1440)


def new_runner() -> StrategyRunner:
    cls = get_strategy(STRATEGY)
    engine = Engine(10_000.0, EngineSettings(taker_fee_bps=4.0, maker_fee_bps=2.0))
    return StrategyRunner(cls(), cls.resolve_params(PARAMS), interval_ms(INTERVAL), engine, history_bars=500,
                          symbol="BTCUSDT", interval=INTERVAL)


def feed(runner: StrategyRunner, minutes: CandleFrame, start: int, stop: int) -> None:
    for i in range(start, stop):
        c = Candle("BTCUSDT", "1m", int(minutes.time[i]), float(minutes.open[i]), float(minutes.high[i]),
                   float(minutes.low[i]), float(minutes.close[i]), float(minutes.volume[i]), 0.0)
        if runner.pending_close(c):
            runner.decide()
        _, complete = runner.on_minute(c)
        if complete:
            runner.decide()


def uninterrupted(minutes: CandleFrame) -> list[Trade]:
    runner = new_runner()
    feed(runner, minutes, 0, len(minutes))
    return runner.all_trades()


def write_fixture(minutes: CandleFrame, name: str) -> None:
    """How the committed fixture was made (with the code of its format): `python -c` this with the old code."""
    runner = new_runner()
    feed(runner, minutes, 0, CUT)
    (FIXTURES / f"{name}-engine.bin").write_bytes(runner.snapshot())
    (FIXTURES / f"{name}-history.bin").write_bytes(runner.history_snapshot())
