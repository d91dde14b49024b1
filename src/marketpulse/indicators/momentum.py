"""Momentum oscillators: RSI and MACD, matching TA-Lib."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from marketpulse.indicators._arrays import F64, as_series, check_period
from marketpulse.indicators.moving_averages import _smoothed


@njit(cache=True, nogil=True)
def _rsi(x: F64, period: int) -> F64:  # pragma: no cover - compiled
    """Wilder-smoothed average gain and loss, in TA-Lib's operation order; NaN changes leave a hole (see RMA)."""
    n = len(x)
    out = np.full(n, np.nan)
    inv = 1.0 / period
    gain = 0.0
    loss = 0.0
    seen = 0
    for i in range(1, n):
        change = x[i] - x[i - 1]
        if np.isnan(change):
            continue
        up = change if change > 0 else 0.0
        down = -change if change < 0 else 0.0
        if seen < period:
            gain += up
            loss += down
            seen += 1
            if seen < period:
                continue
            gain /= period
            loss /= period
        else:
            gain = (gain * (period - 1) + up) * inv  # multiply, not divide: see moving_averages._smooth_into
            loss = (loss * (period - 1) + down) * inv
        total = gain + loss
        out[i] = 0.0 if abs(total) < 1e-14 else 100.0 * gain / total
    return out


def rsi(values: Any, period: int = 14) -> F64:
    """Relative strength index with Wilder's smoothing; first value at index ``period`` (TA-Lib ``RSI``).

    Average gain and loss are seeded with the mean of the first ``period`` changes. A window with no movement at
    all gives 0, as in TA-Lib (TradingView gives 100 there; it never happens on real markets for long).
    """
    return _rsi(as_series(values), check_period(period))


def macd(values: Any, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[F64, F64, F64]:
    """MACD (line, signal, histogram) exactly as TA-Lib ``MACD`` computes it.

    TA-Lib quirks kept on purpose, so numbers agree with it: the fast EMA is seeded with the SMA of the ``fast``
    values ending where the slow EMA's seed ends (index ``slow - 1``), not the first ``fast`` values; and all three
    outputs start together at index ``slow + signal - 2`` (the line itself is known earlier but masked).
    """
    x = as_series(values)
    f, s, g = check_period(fast, "fast"), check_period(slow, "slow"), check_period(signal, "signal")
    if f >= s:
        raise ValueError(f"fast ({f}) must be less than slow ({s})")
    line = _smoothed(x, f, False, s - f) - _smoothed(x, s, False, 0)
    signal_line = _smoothed(line, g, False, 0)
    line[np.isnan(signal_line)] = np.nan
    return line, signal_line, line - signal_line
