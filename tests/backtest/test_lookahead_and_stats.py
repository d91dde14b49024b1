"""No look-ahead (a peeking strategy is caught), path-dependent strategies, and the statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from marketpulse.backtest import Backtest, LookAheadError
from marketpulse.backtest.stats import equity_curve_stats
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import Action, BarState, Param, Signals, Strategy


class Peeking(Strategy):
    """Buys when the NEXT close is higher: a perfect (and impossible) strategy."""

    name: ClassVar[str] = "test_peeking"
    params: ClassVar[tuple[Param, ...]] = ()

    def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
        nxt = np.append(candles.close[1:], candles.close[-1])
        up = nxt > candles.close
        return Signals(up, ~up, np.zeros_like(up), np.zeros_like(up))


class Honest(Peeking):
    name: ClassVar[str] = "test_honest"

    def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
        prev = np.insert(candles.close[:-1], 0, candles.close[0])
        up = candles.close > prev
        return Signals(up, ~up, np.zeros_like(up), np.zeros_like(up))


class EveryTenthBar(Strategy):
    """Path-dependent: enters when flat on every 10th bar, exits after holding 3 bars (uses the engine's state)."""

    name: ClassVar[str] = "test_every_tenth"

    def on_bar(self, i: int, candles: CandleFrame, state: BarState) -> Sequence[Action]:
        assert len(candles) == i + 1  # the engine hands over bars 0..i only
        if state.position == 0 and i % 10 == 0:
            state.memo["entered"] = i
            return ["long_entry"]
        if state.position > 0 and i - state.memo["entered"] >= 3:
            return ["long_exit"]
        return []


def test_a_strategy_peeking_ahead_is_caught(walk: CandleFrame) -> None:
    with pytest.raises(LookAheadError, match="looks ahead"):
        Backtest(walk, Peeking()).run()


def test_an_honest_strategy_passes_the_check(walk: CandleFrame) -> None:
    assert Backtest(walk, Honest()).run().stats.trades > 10


def test_path_dependent_strategy_runs_bar_by_bar(walk: CandleFrame) -> None:
    candles = walk.slice(0, 60)
    result = Backtest(candles, EveryTenthBar()).run()
    # entries decided at bars 0, 10, 20, ... fill at the next open; exits decided at bars 3, 13, ... fill at 4, 14, ...
    assert [(t.entry_time - candles.time[0]) // 60_000 for t in result.trades] == [1, 11, 21, 31, 41, 51]
    assert [(t.exit_time - candles.time[0]) // 60_000 for t in result.trades[:5]] == [4, 14, 24, 34, 44]


def test_equity_curve_stats_by_hand() -> None:
    equity = np.array([11_000.0, 9_900.0, 12_100.0])
    stats = equity_curve_stats(equity, 10_000.0, 86_400_000)
    ret = np.array([0.1, -0.1, 12_100 / 9_900 - 1])
    assert stats["total_return"] == pytest.approx(0.21)
    assert stats["max_drawdown"] == pytest.approx(0.1)
    assert stats["sharpe"] == pytest.approx(ret.mean() / ret.std() * math.sqrt(365.25))
    assert stats["sortino"] == pytest.approx(ret.mean() / math.sqrt(0.01 / 3) * math.sqrt(365.25))


def test_streaming_statistics_agree_with_the_equity_curve(walk: CandleFrame) -> None:
    result = Backtest(walk, "ema_cross", {"fast": 5, "slow": 20}, fee_bps=5, stop_loss=0.01).run()
    ref = equity_curve_stats(result.equity, 10_000.0, 60_000)
    s = result.stats
    for key in ("total_return", "max_drawdown", "sharpe", "sortino", "cagr"):
        assert getattr(s, key) == pytest.approx(ref[key], rel=1e-6), key
    closed = [t for t in result.trades if t.exit_time is not None]
    wins = [t.pnl for t in closed if t.pnl > 0]
    losses = [-t.pnl for t in closed if t.pnl <= 0]
    assert s.trades == len(closed)
    assert s.win_rate == pytest.approx(len(wins) / len(closed))
    assert s.profit_factor == pytest.approx(sum(wins) / sum(losses))
    in_market = sum(1 for i in range(len(walk)) if any(
        t.entry_time <= walk.time[i] and (t.exit_time is None or walk.time[i] < t.exit_time) for t in result.trades))
    assert s.exposure == pytest.approx(in_market / len(walk))
    assert s.final_equity == pytest.approx(10_000 + sum(t.pnl for t in result.trades))
