"""`pulse backtest …`: run and sweep strategies over candles.

Thin: option parsing, loading candles and printing; the work is in `marketpulse.backtest`. Bad input (unknown
strategy, bad --param, unreadable file, no candles in range) exits non-zero with a message naming the problem.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

import marketpulse.strategies  # noqa: F401  (registers the built-ins)
from marketpulse.backtest import METRICS, Backtest, BacktestResult, LookAheadError, Stats
from marketpulse.backtest.candles import CandleQuery, NoCandles
from marketpulse.backtest.candles import load_candles as candle_loader
from marketpulse.backtest.engine import EngineSettings
from marketpulse.backtest.sweep import (
    Job,
    SweepRow,
    backtest_kwargs,
    grid_combinations,
    parse_range,
    random_combinations,
    search,
    walk_forward,
)
from marketpulse.cli.errors import fail, option_interval, option_time
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.klines_csv import KlinesFormatError
from marketpulse.settings import Settings
from marketpulse.strategies.base import Strategy, get_strategy
from marketpulse.times import utc_text

app = typer.Typer(no_args_is_help=True, help="Backtests and parameter sweeps.")
console = Console()
errors = Console(stderr=True)  # where the candles came from: stdout stays the result (--json)

STRATEGY = typer.Option(..., "--strategy", "-s", help="strategy name (ema_cross, ut_bot, rsi_reversion, ...)")
DATA = typer.Option(None, "--data", help="candle CSV file (the layouts of ../shared/data), instead of the library")
SYMBOL = typer.Option(None, "--symbol", help="symbol, e.g. BTCUSDT (required for multi-symbol files)")
INTERVAL = typer.Option(None, "--interval", help="bar interval; a finer file is resampled to it (e.g. 1h)")
EXCHANGE = typer.Option("binance", "--exchange", help="library exchange")
START = typer.Option(None, "--from", help="first bar (YYYY-MM-DD, ISO 8601 or epoch ms, UTC)")
END = typer.Option(None, "--to", help="end, exclusive (YYYY-MM-DD, ISO 8601 or epoch ms, UTC)")
CASH = typer.Option(10_000.0, "--cash", help="starting cash")
FEE = typer.Option(0.0, "--fee-bps", help="taker fee in basis points (market orders, stops)")
MAKER = typer.Option(None, "--maker-fee-bps", help="maker fee in basis points (limit, take-profit); default = taker")
SLIPPAGE = typer.Option(0.0, "--slippage-bps", help="slippage against the trader on taker fills, bps")
SIZE = typer.Option(1.0, "--size", help="fraction of equity committed per entry")
LONG_ONLY = typer.Option(False, "--long-only", help="ignore short entries (they close longs)")
STOP = typer.Option(0.0, "--stop-loss", help="stop-loss as a fraction of the entry price (0.02 = 2%)")
TAKE = typer.Option(0.0, "--take-profit", help="take-profit as a fraction of the entry price")
TRAIL = typer.Option(0.0, "--trailing-stop", help="trailing stop as a fraction below the best price since entry")
LEVERAGE = typer.Option(1.0, "--leverage", help="leverage (perpetuals)")
MAINT = typer.Option(0.0, "--maint-margin", help="maintenance margin rate; > 0 enables liquidation")
FUNDING = typer.Option(0.0, "--funding-rate", help="funding rate charged every 8 h (longs pay a positive rate)")


# --- candles --------------------------------------------------------------------------------------------------
def load_candles(data: Path | None, symbol: str | None, interval: str | None, exchange: str, start: str | None,
                 end: str | None) -> CandleFrame:
    """The candles through the one loader the API uses too (same fallbacks, same refusals)."""
    if data is None and not (symbol and interval):
        fail("give --data FILE, or --symbol and --interval to read the candle library")
    if data is not None and not data.exists():
        fail(f"--data: {data} does not exist")
    query = CandleQuery(
        symbol=symbol, interval=None if interval is None else option_interval(interval, "--interval"),
        exchange=exchange, start=None if start is None else option_time(start, "--from"),
        end=None if end is None else option_time(end, "--to"), file=data,
    )
    try:
        loaded = candle_loader(query, Settings().data_dir / "library")
    except KlinesFormatError as exc:
        fail(exc.problem, file=exc.path, line=exc.line)
    except (NoCandles, OSError, ValueError) as exc:
        fail(str(exc))
    errors.print(f"candles: {loaded.source}, {len(loaded.frame):,} bars", highlight=False)
    return loaded.frame


# --- strategy and parameters ----------------------------------------------------------------------------------
def strategy_class(name: str) -> type[Strategy]:
    try:
        return get_strategy(name)
    except ValueError as exc:
        fail(str(exc))


def split_param(text: str) -> tuple[str, str]:
    if "=" not in text:
        fail(f"--param {text!r}: expected NAME=VALUE")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def run_params(cls: type[Strategy], raw: list[str]) -> dict[str, Any]:
    try:
        return cls.resolve_params(dict(split_param(p) for p in raw))
    except ValueError as exc:
        fail(f"--param: {exc}")


def sweep_axes(cls: type[Strategy], raw: list[str]) -> dict[str, tuple[Any, ...]]:
    axes = {}
    for text in raw:
        name, value = split_param(text)
        try:
            axes[name] = parse_range(cls.param(name), value)
        except ValueError as exc:
            fail(f"--param: {exc}")
        if not axes[name]:
            fail(f"--param {name}: no values in {value!r}")
    return axes


def engine_settings(fee: float, maker: float | None, slippage: float, size: float, long_only: bool, stop: float,
                    take: float, trail: float, leverage: float, maint: float) -> EngineSettings:
    try:
        return EngineSettings(
            taker_fee_bps=fee, maker_fee_bps=fee if maker is None else maker, slippage_bps=slippage, size=size,
            stop_loss=stop, take_profit=take, trailing_stop=trail, leverage=leverage, maint_margin=maint,
            long_only=long_only)
    except ValueError as exc:
        fail(str(exc))


# --- output ---------------------------------------------------------------------------------------------------
def _fmt(value: float, pct: bool = False) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "—" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    return f"{value * 100:,.2f} %" if pct else f"{value:,.4f}" if isinstance(value, float) else f"{value:,}"


PCT_FIELDS = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure"}


def run_title(result: BacktestResult) -> str:
    c = result.candles
    return (f"{result.strategy} {result.params}  {c.symbol} {c.interval}  "
            f"{utc_text(int(c.time[0]))} → {utc_text(int(c.time[-1]))}, {len(c):,} bars")


def stats_table(result: BacktestResult) -> Table:
    table = Table(show_header=True)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in result.stats.as_dict().items():
        table.add_row(key, _fmt(value, key in PCT_FIELDS))
    return table


# --- commands -------------------------------------------------------------------------------------------------
@app.command()
def run(
    strategy: str = STRATEGY,
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE (repeatable)"),  # noqa: B006
    data: Path | None = DATA, symbol: str | None = SYMBOL, interval: str | None = INTERVAL,
    exchange: str = EXCHANGE, start: str | None = START, end: str | None = END, cash: float = CASH,
    fee_bps: float = FEE, maker_fee_bps: float | None = MAKER, slippage_bps: float = SLIPPAGE, size: float = SIZE,
    long_only: bool = LONG_ONLY, stop_loss: float = STOP, take_profit: float = TAKE, trailing_stop: float = TRAIL,
    leverage: float = LEVERAGE, maint_margin: float = MAINT, funding_rate: float = FUNDING,
    report: Path | None = typer.Option(None, "--report", help="write a self-contained HTML report here"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document (stats and trades) instead"),
) -> None:
    """Backtest one strategy with one parameter set; print statistics (and optionally write an HTML report)."""
    cls = strategy_class(strategy)
    params = run_params(cls, param)
    settings = engine_settings(fee_bps, maker_fee_bps, slippage_bps, size, long_only, stop_loss, take_profit,
                               trailing_stop, leverage, maint_margin)
    if not cash > 0:
        fail(f"--cash must be > 0, got {cash}")
    candles = load_candles(data, symbol, interval, exchange, start, end)
    try:
        result = Backtest(candles, cls, params, cash=cash, funding_rate=funding_rate, **backtest_kwargs(settings)).run()
    except LookAheadError as exc:
        fail(str(exc))
    if report is not None:
        from marketpulse.backtest.report import write_report
        from marketpulse.settings import Settings
        from marketpulse.web.assets import node_modules_dir

        write_report(result, report, node_modules_dir(Settings()))  # the chart library from npm, inlined
    if as_json:
        typer.echo(orjson.dumps(result.as_json()).decode())
        return
    console.print(run_title(result), highlight=False)
    console.print(stats_table(result))
    if report is not None:
        console.print(f"report written to {report}")


@app.command()
def sweep(
    strategy: str = STRATEGY,
    param: list[str] = typer.Option(  # noqa: B006
        [], "--param", "-p", help="NAME=START:STOP[:STEP] or NAME=A,B,C (repeatable; others use their grids)"),
    data: Path | None = DATA, symbol: str | None = SYMBOL, interval: str | None = INTERVAL,
    exchange: str = EXCHANGE, start: str | None = START, end: str | None = END, cash: float = CASH,
    fee_bps: float = FEE, maker_fee_bps: float | None = MAKER, slippage_bps: float = SLIPPAGE, size: float = SIZE,
    long_only: bool = LONG_ONLY, stop_loss: float = STOP, take_profit: float = TAKE, trailing_stop: float = TRAIL,
    leverage: float = LEVERAGE, maint_margin: float = MAINT,
    metric: str = typer.Option("sharpe", "--metric", help=f"rank by: {', '.join(METRICS)}"),
    random: int = typer.Option(0, "--random", help="random search: evaluate N random combinations of the grid"),
    seed: int = typer.Option(0, "--seed", help="random-search seed"),
    walk: int = typer.Option(0, "--walk-forward", help="K windows: optimize on window k, score on k+1"),
    top: int = typer.Option(20, "--top", help="rows to print"),
    workers: int = typer.Option(0, "--workers", help="processes (default: all cores)"),
) -> None:
    """Grid or random search over parameter ranges, ranked by a metric; optionally walk-forward."""
    cls = strategy_class(strategy)
    if metric not in METRICS:
        fail(f"--metric: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    axes = sweep_axes(cls, param)
    settings = engine_settings(fee_bps, maker_fee_bps, slippage_bps, size, long_only, stop_loss, take_profit,
                               trailing_stop, leverage, maint_margin)
    if not cash > 0:
        fail(f"--cash must be > 0, got {cash}")
    combos = random_combinations(cls, axes, random, seed) if random > 0 else grid_combinations(cls, axes)
    if not combos:
        fail("no valid parameter combinations (check the ranges against the strategy's rules)")
    candles = load_candles(data, symbol, interval, exchange, start, end)
    job = Job(cls.name, settings, cash, metric)
    began = time.perf_counter()
    if walk:
        try:
            folds = walk_forward(candles, job, combos, walk, workers=workers or None)
        except ValueError as exc:
            fail(f"--walk-forward: {exc}")
        console.print(walk_forward_table(folds, metric, len(combos)))
    else:
        rows = search(candles, job, combos, workers=workers or None)
        console.print(sweep_table(rows[:top], metric, len(combos), cls))
    seconds = time.perf_counter() - began
    console.print(f"{len(combos)} combinations over {len(candles):,} bars in {seconds:.2f} s")


def sweep_table(rows: list[SweepRow], metric: str, total: int, cls: type[Strategy]) -> Table:
    table = Table(title=f"{cls.name}: top {len(rows)} of {total} by {metric}")
    table.add_column("#", justify="right")
    for p in cls.params:
        table.add_column(p.name, justify="right")
    for col in ("sharpe", "total_return", "max_drawdown", "trades", "win_rate"):
        table.add_column(col, justify="right")
    for rank, row in enumerate(rows, 1):
        table.add_row(str(rank), *(str(row.params[p.name]) for p in cls.params), *_stat_cells(row.stats))
    return table


def _stat_cells(s: Stats) -> list[str]:
    return [_fmt(s.sharpe), _fmt(s.total_return, True), _fmt(s.max_drawdown, True), str(s.trades),
            _fmt(s.win_rate, True)]


def _days(span: tuple[int, int]) -> str:
    return f"{utc_text(span[0], DAY)}…{utc_text(span[1], DAY)}"


DAY = "%Y-%m-%d"


def walk_forward_table(folds: list[Any], metric: str, total: int) -> Table:
    table = Table(title=f"walk-forward: best of {total} on window k (in-sample, IS), "
                        "scored on k+1 (out-of-sample, OOS)")
    for col in ("fold", "in-sample", "out-of-sample", "best params", f"IS {metric}", f"OOS {metric}", "IS return",
                "OOS return"):
        table.add_column(col, justify="right", overflow="fold")
    for f in folds:
        table.add_row(str(f.index), _days(f.in_sample), _days(f.out_sample),
                      " ".join(f"{k}={v}" for k, v in f.params.items()), _fmt(f.in_score), _fmt(f.out_score),
                      _fmt(f.in_stats.total_return, True), _fmt(f.out_stats.total_return, True))
    if folds:
        mean_is = sum(f.in_score for f in folds) / len(folds)
        mean_oos = sum(f.out_score for f in folds) / len(folds)
        table.add_row("mean", "", "", "", _fmt(mean_is), _fmt(mean_oos), "", "")
    return table
