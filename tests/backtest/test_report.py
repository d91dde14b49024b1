"""The HTML report: chart data aggregated exactly, trades marked, one self-contained file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marketpulse.backtest import Backtest
from marketpulse.backtest import report as report_module
from marketpulse.backtest.report import chart_data, write_report
from marketpulse.marketdata.frame import CandleFrame


def test_long_series_are_aggregated_into_exact_candles(walk: CandleFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_module, "MAX_CANDLES", 100)
    result = Backtest(walk, "ema_cross", {"fast": 5, "slow": 20}).run()
    data = chart_data(result)
    assert data["barsPerCandle"] == 30 and len(data["t"]) == 100
    assert data["o"][1] == walk.open[30] and data["c"][1] == walk.close[59]
    assert data["h"][1] == walk.high[30:60].max() and data["l"][1] == walk.low[30:60].min()
    assert data["eq"][-1] == result.equity[-1]
    assert len(data["trades"]) == len(result.trades)
    assert data["trades"][0][:3] == ["long" if result.trades[0].side == "long" else "short",
                                     result.trades[0].entry_time, result.trades[0].entry_price]


def test_report_is_one_self_contained_file(walk: CandleFrame, tmp_path: Path) -> None:
    result = Backtest(walk, "ema_cross", {"fast": 5, "slow": 20}).run()
    page = write_report(result, tmp_path / "r.html").read_text()
    assert "<script src" not in page and "http" not in page.replace("http-equiv", "")
    assert page.count("<canvas") == 2 and "final_equity" in page
    assert np.isfinite(result.stats.sharpe) and f"{result.stats.sharpe:,.4f}" in page
