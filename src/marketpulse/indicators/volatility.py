"""True range, ATR (TA-Lib and TradingView seeding) and Bollinger Bands."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from marketpulse.indicators._arrays import F64, as_columns, as_series, check_period
from marketpulse.indicators.moving_averages import _rolling_mean, _smooth_into


@njit(cache=True, nogil=True)
def _true_range(h: F64, lo: F64, c: F64, first_bar_high_low: bool) -> F64:  # pragma: no cover - compiled
    # One fused pass: the numpy version needs eight 1M-element temporaries and is ~10x slower.
    n = len(c)
    out = np.full(n, np.nan)
    if n > 0 and first_bar_high_low:
        out[0] = h[0] - lo[0]
    for i in range(1, n):
        pc = c[i - 1]
        out[i] = max(h[i] - lo[i], max(abs(h[i] - pc), abs(lo[i] - pc)))
        if np.isnan(pc) or np.isnan(h[i]) or np.isnan(lo[i]):
            out[i] = np.nan  # max() would quietly drop a NaN operand
    return out


def true_range(high: Any, low: Any, close: Any, *, first_bar_high_low: bool = False) -> F64:
    """max(high - low, |high - previous close|, |low - previous close|).

    Bar 0 has no previous close: NaN like TA-Lib ``TRANGE`` by default; ``first_bar_high_low=True`` gives
    ``high - low`` there, like TradingView ``ta.tr(true)``.
    """
    h, lo, c = as_columns(high=high, low=low, close=close)
    return _true_range(h, lo, c, bool(first_bar_high_low))


def atr(high: Any, low: Any, close: Any, period: int = 14) -> F64:
    """Average true range with Wilder's smoothing, TA-Lib convention: first value at index ``period``.

    It is the mean of true ranges 1..period (bar 0 has none), then RMA. TradingView's ``ta.atr`` starts one bar
    earlier because it counts ``high - low`` for bar 0: see ``tv_atr``. The two converge as the seed decays.
    """
    tr = true_range(high, low, close)
    return _smooth_into(tr, tr, check_period(period), True, 0)


def tv_atr(high: Any, low: Any, close: Any, period: int = 14) -> F64:
    """TradingView ``ta.atr``: ``ta.rma(ta.tr(true), period)``, first value at index ``period - 1``."""
    tr = true_range(high, low, close, first_bar_high_low=True)
    return _smooth_into(tr, tr, check_period(period), True, 0)


@njit(cache=True, nogil=True)
def _rolling_std(x: F64, mean: F64, period: int) -> F64:  # pragma: no cover - compiled
    # Two passes per window instead of E[x^2] - E[x]^2: prices near 1e5 would lose most digits to cancellation.
    n = len(x)
    out = np.full(n, np.nan)
    for i in range(period - 1, n):
        m = mean[i]
        if np.isnan(m):
            continue
        acc = 0.0
        for j in range(i - period + 1, i + 1):
            d = x[j] - m
            acc += d * d
        out[i] = np.sqrt(acc / period)
    return out


def rolling_std(values: Any, period: int) -> F64:
    """Population standard deviation over the last ``period`` values (TA-Lib ``STDDEV``, TradingView ``ta.stdev``)."""
    x = as_series(values)
    p = check_period(period)
    return _rolling_std(x, _rolling_mean(x, p), p)


def bollinger(values: Any, period: int = 20, k: float = 2.0) -> tuple[F64, F64, F64]:
    """Bollinger Bands (upper, middle, lower): SMA +- k population standard deviations (TA-Lib ``BBANDS``)."""
    x = as_series(values)
    p = check_period(period)
    middle = _rolling_mean(x, p)
    width = float(k) * _rolling_std(x, middle, p)
    return middle + width, middle, middle - width
