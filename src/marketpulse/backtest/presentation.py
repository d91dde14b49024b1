"""How a finished backtest is shown (the /backtests page and the HTML report read the same figures): pure.

- `chart`: the candles (exact OHLC of each group of bars when there are more than MAX_POINTS), the equity curve
  beside buy-and-hold (the starting cash in the asset from the first close) and the drawdown from the running peak
  at the same points (each group's worst), times in epoch ms.
- `monthly_returns`: each calendar month's (UTC) return of the equity curve, the first against the starting cash.
- `summary`: the statistics with readable names and units; annualized figures only where the run spans enough
  time to mean something (a 3-day run's CAGR of 1297 % misleads): CAGR from MIN_DAYS_CAGR days, Sharpe and Sortino
  (annualized) from MIN_DAYS_RATIOS; shorter runs show them as not applicable, saying why.
- `exit_label`: a trade's exit in words; the engine's "order" exit is a reversal when the next trade opens at that
  moment on the other side, else the strategy's exit signal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

MAX_POINTS = 2000
MIN_DAYS_CAGR = 365
MIN_DAYS_RATIOS = 30
DAY_MS = 86_400_000

EXIT_LABELS = {"stop_loss": "stop loss", "take_profit": "take profit", "trailing_stop": "trailing stop",
               "liquidation": "liquidation", "open": "still open", "signal": "exit signal", "reversal": "reversal"}


def exit_kinds(trades: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each trade's exit kind: the engine's, with "order" told apart as "reversal" or "signal"."""
    out = []
    for i, t in enumerate(trades):
        reason = str(t["exit_reason"])
        if reason == "order":
            nxt = trades[i + 1] if i + 1 < len(trades) else None
            flipped = nxt is not None and nxt["entry_time"] == t["exit_time"] and nxt["side"] != t["side"]
            reason = "reversal" if flipped else "signal"
        out.append(reason)
    return out


def exit_label(kind: str) -> str:
    return EXIT_LABELS.get(kind, kind.replace("_", " "))


def chart(time: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
          equity: np.ndarray, start_cash: float) -> dict[str, list[float]]:
    n = len(time)
    if n == 0:
        return {k: [] for k in ("time", "open", "high", "low", "close", "equity", "hold", "drawdown")}
    group = max(1, math.ceil(n / MAX_POINTS))
    starts = np.arange(0, n, group)
    ends = np.minimum(starts + group, n) - 1
    peak = np.maximum.accumulate(np.maximum(equity, start_cash))
    drawdown = np.where(peak > 0, 1.0 - equity / peak, 0.0)
    hold = start_cash * close / close[0] if close[0] > 0 else np.full(n, start_cash)
    return {
        "time": [int(t) for t in time[starts]],
        "open": open_[starts].tolist(),
        "high": np.maximum.reduceat(high, starts).tolist(),
        "low": np.minimum.reduceat(low, starts).tolist(),
        "close": close[ends].tolist(),
        "equity": equity[ends].tolist(),
        "hold": hold[ends].tolist(),
        "drawdown": np.maximum.reduceat(drawdown, starts).tolist(),
    }


def monthly_returns(time: np.ndarray, equity: np.ndarray, start_cash: float) -> list[dict[str, Any]]:
    """[{"month": "2025-10", "return": 0.031}, …] in order; a month's return is its last equity over the last of
    the month before (the starting cash for the first)."""
    out: list[dict[str, Any]] = []
    if len(time) == 0:
        return out
    months = np.array([_month(int(t)) for t in time])
    last_of_month = np.flatnonzero(np.append(months[1:] != months[:-1], True))
    before = start_cash
    for i in last_of_month:
        value = float(equity[i])
        out.append({"month": str(months[i]), "return": value / before - 1.0 if before > 0 else None})
        before = value
    return out


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def summary(stats: Mapping[str, Any], span_ms: float) -> list[dict[str, Any]]:
    """The statistics as rows {key, label, value, text, note}: `value` is the raw figure (None when not shown),
    `text` what a reader sees, with its unit; `note` explains a figure left out or how it is measured."""
    days = span_ms / DAY_MS

    def num(key: str) -> float | None:
        v = stats.get(key)
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)

    rows: list[dict[str, Any]] = []

    def row(key: str, label: str, text_of: Any, note: str = "", shown: bool = True) -> None:
        value = num(key) if shown else None
        text = "—" if value is None else text_of(value)
        raw = stats.get(key)
        if shown and isinstance(raw, float) and math.isinf(raw):
            text = "∞" if raw > 0 else "−∞"  # a profit factor with no losing trade, a Sortino with no downside
        rows.append({"key": key, "label": label, "value": value, "text": text, "note": note})

    usd = lambda v: f"${v:,.2f}"  # noqa: E731
    pct = lambda v: f"{v * 100:+,.2f} %"  # noqa: E731
    plain_pct = lambda v: f"{v * 100:,.1f} %"  # noqa: E731
    count = lambda v: f"{int(v):,}"  # noqa: E731
    ratio = lambda v: f"{v:,.2f}"  # noqa: E731
    span_note = f"this run spans {days:,.1f} days"
    row("start_cash", "Starting cash", usd)
    row("final_equity", "Final equity", usd)
    row("total_return", "Total return", pct, "over the whole run, after fees and funding")
    row("cagr", "Annual growth (CAGR)", lambda v: f"{v * 100:+,.2f} % / year",
        f"from {MIN_DAYS_CAGR} days of data; {span_note}" if days < MIN_DAYS_CAGR else "compounded per year",
        shown=days >= MIN_DAYS_CAGR)
    row("max_drawdown", "Max drawdown", lambda v: f"−{v * 100:,.2f} %", "largest fall from a peak of equity")
    ratios_note = (f"annualized; shown from {MIN_DAYS_RATIOS} days of data, {span_note}" if days < MIN_DAYS_RATIOS
                   else "annualized, risk-free rate 0")
    row("sharpe", "Sharpe ratio", ratio, ratios_note, shown=days >= MIN_DAYS_RATIOS)
    row("sortino", "Sortino ratio", ratio, ratios_note, shown=days >= MIN_DAYS_RATIOS)
    row("win_rate", "Win rate", plain_pct, "of closed trades")
    row("profit_factor", "Profit factor", lambda v: f"{v:,.2f} ×", "gross profit / gross loss")
    row("exposure", "Time in the market", plain_pct, "share of bars holding a position")
    row("trades", "Closed trades", count)
    row("open_trades", "Open at the end", count)
    row("fees", "Fees paid", usd)
    row("funding", "Funding paid", usd)
    row("bars", "Bars", count)
    rows.append({"key": "span_days", "label": "Span", "value": days, "text": f"{days:,.1f} days", "note": ""})
    return rows


def present(result: Any) -> dict[str, Any]:
    """A `BacktestResult`'s chart, monthly returns, summary and exit labels (what result JSON and report show)."""
    c = result.candles
    start_cash = float(result.stats.start_cash)
    interval = float(np.median(np.diff(c.time[:10_001]))) if len(c) > 1 else 0.0
    span = float(c.time[-1] - c.time[0]) + interval if len(c) else 0.0
    trades = [t.as_json() for t in result.trades]
    kinds = exit_kinds(trades)
    return {
        "chart": chart(c.time, c.open, c.high, c.low, c.close, result.equity, start_cash),
        "monthly": monthly_returns(c.time, result.equity, start_cash),
        "summary": summary(result.stats.as_dict(), span),
        "exits": [{"kind": k, "label": exit_label(k)} for k in kinds],
    }
