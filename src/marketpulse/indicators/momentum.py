"""Momentum oscillators: RSI and MACD, matching TA-Lib."""

from __future__ import annotations

from typing import Any

import numpy as np

from marketpulse.indicators._arrays import F64, as_series, check_period
from marketpulse.indicators.moving_averages import _smoothed


def rsi(values: Any, period: int = 14) -> F64:
    """Relative strength index with Wilder's smoothing; first value at index ``period`` (TA-Lib ``RSI``).

    Average gain and loss are seeded with the mean of the first ``period`` changes. A window with no movement at
    all gives 0, as in TA-Lib (TradingView gives 100 there; it never happens on real markets for long).
    """
    x = as_series(values)
    p = check_period(period)
    change = np.full(len(x), np.nan)
    change[1:] = np.diff(x)
    gain = np.where(change > 0, change, 0.0)
    loss = np.where(change < 0, -change, 0.0)
    nan = np.isnan(change)
    gain[nan] = np.nan
    loss[nan] = np.nan
    avg_gain = _smoothed(gain, p, True, 0)
    avg_loss = _smoothed(loss, p, True, 0)
    total = avg_gain + avg_loss
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(total) < 1e-14, 0.0, 100.0 * avg_gain / total)
    out[np.isnan(total)] = np.nan
    return out


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
