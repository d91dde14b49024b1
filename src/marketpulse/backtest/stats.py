"""Backtest statistics: read from the core's streaming accumulators, plus a plain-numpy reference for tests.

Returns are per bar (equity_t / equity_{t-1} - 1, the first against the starting cash). Annualization assumes a
market that trades around the clock: ``bars_per_year = 365.25 days / bar interval``.
Sharpe = mean / std (population) * sqrt(bars_per_year), risk-free rate 0; Sortino uses the downside deviation
sqrt(mean(min(r, 0)^2)). Max drawdown is the largest fall from a running peak, as a positive fraction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from marketpulse.backtest import core
from marketpulse.backtest.core import F64

YEAR_MS = 365.25 * 86_400_000


@dataclass(frozen=True)
class Stats:
    start_cash: float
    final_equity: float
    total_return: float
    cagr: float
    max_drawdown: float
    sharpe: float
    sortino: float
    win_rate: float  # over closed trades; NaN without any
    profit_factor: float  # gross profit / gross loss of closed trades
    exposure: float  # fraction of bars that closed with a position
    trades: int  # closed trades
    open_trades: int
    fees: float
    funding: float
    bars: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metric(self, name: str) -> float:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        value = float(getattr(self, name))
        # max_drawdown is "lower is better"; ranking always sorts descending, so flip it.
        return -value if name == "max_drawdown" else value


METRICS = ("sharpe", "sortino", "total_return", "cagr", "final_equity", "max_drawdown", "win_rate", "profit_factor")


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def _cagr(growth: float, years: float) -> float:
    if growth <= 0:
        return -1.0
    if years <= 0:
        return math.nan
    try:
        return math.exp(math.log(growth) / years) - 1.0
    except OverflowError:  # a few hours annualized can exceed a float
        return math.inf


def stats_from_state(state: F64, interval_ms: float) -> Stats:
    """Statistics of a finished (or running) account, straight from the core's accumulators."""
    bars = int(state[core.S_BARS])
    start = float(state[core.S_INITIAL_CASH])
    final = float(state[core.S_EQUITY])
    n = max(bars, 1)
    mean = state[core.S_SUM_RET] / n
    var = max(state[core.S_SUM_RET2] / n - mean * mean, 0.0)
    down = math.sqrt(state[core.S_SUM_DOWN2] / n)
    annual = math.sqrt(YEAR_MS / interval_ms) if interval_ms > 0 else math.nan
    years = bars * interval_ms / YEAR_MS
    cagr = _cagr(final / start, years)
    closed = int(state[core.S_TRADES])
    stats = Stats(
        start_cash=start,
        final_equity=final,
        total_return=final / start - 1.0,
        cagr=cagr,
        max_drawdown=float(state[core.S_MAX_DRAWDOWN]),
        sharpe=mean / math.sqrt(var) * annual if var > 0 else math.nan,
        sortino=mean / down * annual if down > 0 else (math.inf if mean > 0 else math.nan),
        win_rate=state[core.S_WINS] / closed if closed else math.nan,
        profit_factor=_ratio(state[core.S_GROSS_PROFIT], state[core.S_GROSS_LOSS]),
        exposure=state[core.S_BARS_IN_MARKET] / n,
        trades=closed,
        open_trades=1 if state[core.S_UNITS] != 0 else 0,
        fees=float(state[core.S_FEES_TOTAL]),
        funding=float(state[core.S_FUNDING_TOTAL]),
        bars=bars,
    )
    # numpy scalars leak in from the state array; plain floats keep JSON and printing simple.
    plain: dict[str, Any] = {k: v if isinstance(v, int) else float(v) for k, v in asdict(stats).items()}
    return Stats(**plain)


def equity_curve_stats(equity: F64, start_cash: float, interval_ms: float) -> dict[str, float]:
    """Reference computation over a whole equity curve (what the streaming accumulators must agree with)."""
    prev = np.concatenate(([start_cash], equity[:-1]))
    ret = equity / prev - 1.0
    peak = np.maximum.accumulate(np.concatenate(([start_cash], equity)))[1:]
    annual = math.sqrt(YEAR_MS / interval_ms)
    std = float(ret.std())
    down = math.sqrt(float(np.mean(np.minimum(ret, 0.0) ** 2)))
    years = len(equity) * interval_ms / YEAR_MS
    return {
        "total_return": float(equity[-1] / start_cash - 1.0),
        "max_drawdown": float(np.max(1.0 - equity / peak)),
        "sharpe": float(ret.mean() / std * annual) if std > 0 else math.nan,
        "sortino": float(ret.mean() / down * annual) if down > 0 else math.nan,
        "cagr": _cagr(float(equity[-1] / start_cash), years),
    }
