"""The deployment runner's core, without database or bus: every built-in strategy, fed real BTCUSDT minutes one
at a time, makes exactly the trades `Backtest(...).run()` makes on the same minutes resampled to its interval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from marketpulse.backtest import Backtest, Engine, EngineSettings, Trade
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import interval_ms
from marketpulse.marketdata.klines_csv import read_klines_frame
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.resample import resample
from marketpulse.marketdata.sample import btcusdt_spot_1m_path
from marketpulse.strategies import REGISTRY, Action, BarState, Param, Strategy, get_strategy
from marketpulse.trading.paper.strategy_runner import StrategyRunner

DAYS = 2


@pytest.fixture(scope="module")
def minutes() -> CandleFrame:
    frame = read_klines_frame(btcusdt_spot_1m_path(), symbol="BTCUSDT", interval="1m")["BTCUSDT"]
    return frame.slice(0, DAYS * 1440)


def run_paper(minutes: CandleFrame, strategy: str, params: dict[str, Any], interval: str, **engine: Any) -> list[Trade]:
    settings = EngineSettings(taker_fee_bps=4.0, maker_fee_bps=4.0, **engine)
    cls = get_strategy(strategy)
    runner = StrategyRunner(cls(), cls.resolve_params(params), interval_ms(interval), Engine(10_000.0, settings),
                            history_bars=100_000)
    for i in range(len(minutes)):
        c = Candle("BTCUSDT", "1m", int(minutes.time[i]), float(minutes.open[i]), float(minutes.high[i]),
                   float(minutes.low[i]), float(minutes.close[i]), float(minutes.volume[i]), 0.0)
        if runner.pending_close(c):
            runner.decide()
        _, complete = runner.on_minute(c)
        if complete:
            runner.decide()  # every proposal accepted: no risk limits here
    return runner.all_trades()


CASES = [(name, {}, "15m") for name in sorted(REGISTRY)] + [
    ("ut_bot", {"mode": "always_in", "key_value": 2.0}, "5m"),
    ("ut_bot", {"heikin_ashi": True}, "1h"),
    ("ema_cross", {"fast": 5, "slow": 20}, "1m"),
]


@pytest.mark.parametrize(("strategy", "params", "interval"), CASES)
def test_runner_matches_backtest(minutes: CandleFrame, strategy: str, params: dict[str, Any], interval: str) -> None:
    bars = resample(minutes, interval) if interval != "1m" else minutes
    expected = Backtest(bars, strategy, params, cash=10_000.0, fee_bps=4.0).run().trades
    assert expected, "a case without trades proves nothing"
    assert run_paper(minutes, strategy, params, interval) == expected


def test_runner_matches_backtest_long_only_and_sized(minutes: CandleFrame) -> None:
    bars = resample(minutes, "15m")
    expected = Backtest(bars, "supertrend", {}, cash=10_000.0, fee_bps=4.0, size=0.5, long_only=True).run().trades
    assert expected and {t.side for t in expected} == {"long"}
    assert run_paper(minutes, "supertrend", {}, "15m", size=0.5, long_only=True) == expected


class HoldThenFlip(Strategy):
    """A path-dependent test strategy (not registered): it reads the engine's position and its own memo."""

    name: ClassVar[str] = "hold_then_flip_test"
    params: ClassVar[tuple[Param, ...]] = (Param("bars", 4, low=1, high=100),)

    def on_bar(self, i: int, candles: CandleFrame, state: BarState) -> Sequence[Action]:
        if state.position == 0:
            state.memo["held"] = 0
            return ["long_entry"] if candles.close[i] >= candles.open[i] else ["short_entry"]
        state.memo["held"] = state.memo.get("held", 0) + 1
        if state.memo["held"] < state.params["bars"]:
            return []
        return ["short_entry"] if state.position > 0 else ["long_entry"]  # flip


def test_runner_matches_backtest_for_a_path_dependent_strategy(minutes: CandleFrame) -> None:
    bars = resample(minutes, "30m")
    expected = Backtest(bars, HoldThenFlip(), {"bars": 3}, cash=10_000.0, fee_bps=4.0).run().trades
    assert len(expected) > 10 and HoldThenFlip.path_dependent
    settings = EngineSettings(taker_fee_bps=4.0, maker_fee_bps=4.0)
    runner = StrategyRunner(HoldThenFlip(), {"bars": 3}, interval_ms("30m"), Engine(10_000.0, settings))
    for i in range(len(minutes)):
        c = Candle("BTCUSDT", "1m", int(minutes.time[i]), float(minutes.open[i]), float(minutes.high[i]),
                   float(minutes.low[i]), float(minutes.close[i]), float(minutes.volume[i]), 0.0)
        _, complete = runner.on_minute(c)
        if complete:
            runner.decide()
    assert runner.all_trades() == expected
