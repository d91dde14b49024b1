"""`pulse backtest run/sweep` end to end on small CSV files, and the sweep's agreement with single backtests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketpulse.backtest import Backtest
from marketpulse.backtest.engine import EngineSettings
from marketpulse.backtest.sweep import Job, grid_combinations, parse_range, search, walk_forward
from marketpulse.cli.main import app
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies import get_strategy

runner = CliRunner()


def write_csv(path: Path, frames: list[CandleFrame]) -> Path:
    lines = ["symbol,open_time_ms,open,high,low,close,volume"]
    for f in frames:
        for i in range(len(f)):  # repr of a Python float round-trips exactly
            prices = ",".join(repr(float(col[i])) for col in (f.open, f.high, f.low, f.close, f.volume))
            lines.append(f"{f.symbol},{int(f.time[i])},{prices}")
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    return path


@pytest.fixture
def csv_file(tmp_path: Path, make_walk) -> Path:  # type: ignore[no-untyped-def]
    a = make_walk(1500, seed=1)
    b = CandleFrame(a.time, a.open * 2, a.high * 2, a.low * 2, a.close * 2, a.volume, "OTHERUSDT", "1m")
    return write_csv(tmp_path / "two.csv.gz", [a, b])


def test_run_json_document(csv_file: Path, make_walk) -> None:  # type: ignore[no-untyped-def]
    out = runner.invoke(app, ["backtest", "run", "--strategy", "ema_cross", "--data", str(csv_file), "--symbol",
                              "TESTUSDT", "--param", "fast=5", "--param", "slow=20", "--fee-bps", "4", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert {"final_equity", "total_return", "max_drawdown", "sharpe", "trades"} <= set(doc["stats"])
    trades = doc["trades"]
    assert len(trades) > 10
    assert set(trades[0]) >= {"side", "entry_time", "exit_time", "entry_price", "exit_price", "size", "pnl"}
    assert all(isinstance(t["entry_time"], int) and t["entry_time"] > 1_600_000_000_000 for t in trades)
    assert all(t["exit_time"] is not None for t in trades[:-1])
    # the same run through the API
    expected = Backtest(make_walk(1500, seed=1), "ema_cross", {"fast": 5, "slow": 20}, fee_bps=4).run()
    assert doc["stats"]["final_equity"] == pytest.approx(expected.stats.final_equity)
    assert doc["stats"]["final_equity"] == pytest.approx(10_000 + sum(t["pnl"] for t in trades))
    assert [t["entry_time"] for t in trades] == [t.entry_time for t in expected.trades]


def test_run_resamples_prints_and_writes_report(csv_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "out.html"
    out = runner.invoke(app, ["backtest", "run", "-s", "ut_bot", "--data", str(csv_file), "--symbol", "OTHERUSDT",
                              "--interval", "5m", "--long-only", "--size", "0.5", "--report", str(report)])
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())
    assert "final_equity" in text and "OTHERUSDT 5m" in text
    assert "299 bars" in text  # 1,500 minutes from 22:13: the partial first and last 5m buckets are dropped
    page = report.read_text()
    # self-contained: lightweight-charts inlined from node_modules (the canvas fallback without it)
    assert page.startswith("<!doctype html>") and ("LightweightCharts" in page or "<canvas" in page)
    assert "<script src" not in page


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "nope"], "unknown strategy 'nope'; known: bollinger_breakout, ema_cross"),
    (["--strategy", "ema_cross", "--param", "fast=x"], "parameter 'fast'"),
    (["--strategy", "ema_cross", "--param", "speed=3"], "no parameter 'speed'"),
    (["--strategy", "ema_cross", "--param", "fast=30"], "'fast' (30) must be less than 'slow'"),
    (["--strategy", "ema_cross"], "holds 2 symbols; name one with symbol"),
    (["--strategy", "ema_cross", "--symbol", "TESTUSDT", "--from", "yesterday"], "--from"),
    (["--strategy", "ema_cross", "--symbol", "TESTUSDT", "--size", "0"], "size must be > 0"),
])
def test_bad_input_exits_non_zero_naming_the_problem(csv_file: Path, args: list[str], message: str) -> None:
    out = runner.invoke(app, ["backtest", "run", "--data", str(csv_file), *args])
    assert out.exit_code == 2  # the one code for bad input (marketpulse.cli.errors)
    assert message in " ".join(out.output.split())


def test_sweep_prints_a_ranked_table(csv_file: Path) -> None:
    out = runner.invoke(app, ["backtest", "sweep", "-s", "ema_cross", "--data", str(csv_file), "--symbol", "TESTUSDT",
                              "--param", "fast=5:8", "--param", "slow=20:30:5", "--metric", "total_return",
                              "--workers", "1"])
    assert out.exit_code == 0, out.output
    assert "top 12 of 12 by total_return" in out.stdout
    walk = runner.invoke(app, ["backtest", "sweep", "-s", "ema_cross", "--data", str(csv_file), "--symbol",
                               "TESTUSDT", "--param", "fast=5,8", "--param", "slow=20", "--walk-forward", "3",
                               "--random", "2", "--workers", "1"])
    assert walk.exit_code == 0, walk.output
    assert "walk-forward" in walk.stdout and "mean" in walk.stdout


def test_parse_range_and_default_grid() -> None:
    cls = get_strategy("ema_cross")
    assert parse_range(cls.param("fast"), "5:20:1") == tuple(range(5, 21))
    assert parse_range(cls.param("slow"), "20:60:5") == (20, 25, 30, 35, 40, 45, 50, 55, 60)
    assert len(grid_combinations(cls, {})) == 143  # fast 5..20 x slow 20..60/5 minus fast >= slow (only 20/20)
    with pytest.raises(ValueError, match="'fast'"):
        parse_range(cls.param("fast"), "9:5")


def test_sweep_scores_equal_single_backtests(make_walk) -> None:  # type: ignore[no-untyped-def]
    candles = make_walk(2000, seed=5)
    settings = EngineSettings(taker_fee_bps=3, stop_loss=0.01)
    combos = grid_combinations(get_strategy("ema_cross"), {"fast": (5, 9), "slow": (20, 30)})
    rows = search(candles, Job("ema_cross", settings, 10_000, "sharpe"), combos, workers=2)
    assert [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)
    for row in rows:
        single = Backtest(candles, "ema_cross", row.params, fee_bps=3, stop_loss=0.01).run().stats
        assert row.stats == single


def test_walk_forward_scores_each_winner_on_the_next_window(make_walk) -> None:  # type: ignore[no-untyped-def]
    candles = make_walk(3000, seed=9)
    combos = grid_combinations(get_strategy("ema_cross"), {"fast": (5, 8), "slow": (20, 40)})
    job = Job("ema_cross", EngineSettings(), 10_000, "sharpe")
    folds = walk_forward(candles, job, combos, 3, workers=1)
    assert len(folds) == 2
    for k, fold in enumerate(folds):
        assert fold.in_sample[1] == fold.out_sample[0] == int(candles.time[(k + 1) * 1000])
        best = search(candles, job, combos, workers=1, start=k * 1000, stop=(k + 1) * 1000,
                      warmup_start=(k - 1) * 1000 if k else None)[0]
        assert fold.params == best.params and fold.out_stats.bars == 1000


def test_run_reads_the_library_by_symbol_interval_and_dates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            make_walk) -> None:  # type: ignore[no-untyped-def]
    from marketpulse.marketdata.library import CandleLibrary

    monkeypatch.setenv("PULSE_DATA_DIR", str(tmp_path / "var"))
    minutes = make_walk(3 * 1440, seed=4, start_ms=1_704_067_200_000)  # 2024-01-01 .. 2024-01-03, 1m
    CandleLibrary(tmp_path / "var" / "library").append("binance", "TESTUSDT", "1m", minutes)
    out = runner.invoke(app, ["backtest", "run", "-s", "ema_cross", "--symbol", "TESTUSDT", "--interval", "15m",
                              "--from", "2024-01-02", "--to", "2024-01-03", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["stats"]["bars"] == 96  # one day of 15m candles, resampled from the stored minutes
    assert all(1_704_153_600_000 <= t["entry_time"] < 1_704_240_000_000 for t in doc["trades"])
    missing = runner.invoke(app, ["backtest", "run", "-s", "ema_cross", "--symbol", "NOPEUSDT", "--interval", "1h"])
    assert missing.exit_code != 0 and "no binance NOPEUSDT candles" in " ".join(missing.output.split())
