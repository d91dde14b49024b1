"""The HTML report: chart data aggregated exactly, trades marked, one self-contained file."""

from __future__ import annotations

from pathlib import Path

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
    """Without lightweight-charts installed: our own canvas chart, still every figure."""
    result = Backtest(walk, "ema_cross", {"fast": 5, "slow": 20}).run()
    page = write_report(result, tmp_path / "r.html").read_text()
    assert "<script src" not in page and "http" not in page.replace("http-equiv", "")
    assert page.count("<canvas") == 2 and "Final equity" in page and f"${result.stats.final_equity:,.2f}" in page
    assert "Monthly returns" in page


NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"


def test_report_inlines_lightweight_charts_and_reads_like_the_page(tmp_path: Path) -> None:
    """With lightweight-charts installed: the library and our chart script inlined (no network), exits in words,
    no annualized figures over three days (tests/web/test_one_app.py opens one in Chromium, network blocked)."""
    from marketpulse.backtest.candles import CandleQuery, load_candles
    from marketpulse.marketdata.intervals import Interval

    if not (NODE_MODULES / report_module.CHART_LIBRARY).is_file():
        pytest.skip("node_modules has no lightweight-charts: run npm ci")
    candles = load_candles(CandleQuery("BTCUSDT", Interval.M15), tmp_path / "no-library").frame
    result = Backtest(candles, "ema_cross", {}, fee_bps=4).run()
    page = write_report(result, tmp_path / "r.html", NODE_MODULES).read_text()
    assert "<script src" not in page and "https://" not in page.split("<script>")[0]
    assert "LightweightCharts" in page and "BacktestChart.draw" in page
    assert "reversal" in page and "<td>order</td>" not in page
    assert "not shown: from 365 days of data; this run spans 3.0 days" in page  # no CAGR over three days
    assert '<tr data-stat="total_return">' in page and "%" in page
    assert "<th>2025</th>" in page  # the monthly returns table

