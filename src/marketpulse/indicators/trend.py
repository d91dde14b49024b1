"""Trailing-stop trend indicators: TradingView's SuperTrend and the UT Bot ATR trailing stop.

Both are line-by-line transcriptions of the Pine definitions, including Pine's ``na`` semantics: ``nz(x[1])`` is 0
for a missing previous value, comparisons with ``na`` are false, and ``math.max``/``math.min`` with ``na`` give
``na``. Their ATR is TradingView's ``ta.atr`` (``tv_atr``), not TA-Lib's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from marketpulse.indicators._arrays import F64, Bool, as_columns, check_period
from marketpulse.indicators.volatility import tv_atr


@njit(cache=True, nogil=True)
def _supertrend(h: F64, lo: F64, c: F64, atr: F64, factor: float) -> tuple[F64, F64]:  # pragma: no cover
    """Returns (line, direction); ``line`` IS the ``atr`` buffer, overwritten in place (one 8 MB allocation less
    per 1M bars; each ATR value is read before its slot is written)."""
    n = len(c)
    line = atr
    direction = np.full(n, np.nan)
    lower_prev = np.nan  # lowerBand[1], upperBand[1], superTrend[1], atr[1], close[1] as Pine sees them
    upper_prev = np.nan
    st_prev = np.nan
    atr_prev = np.nan
    close_prev = np.nan
    for i in range(n):
        atr_i = atr[i]
        mid = (h[i] + lo[i]) / 2.0
        upper = mid + factor * atr_i
        lower = mid - factor * atr_i
        plb = 0.0 if np.isnan(lower_prev) else lower_prev
        pub = 0.0 if np.isnan(upper_prev) else upper_prev
        if not (lower > plb or close_prev < plb):
            lower = plb
        if not (upper < pub or close_prev > pub):
            upper = pub
        if np.isnan(atr_prev):
            d = 1.0
        elif st_prev == pub:
            d = -1.0 if c[i] > upper else 1.0
        else:
            d = 1.0 if c[i] < lower else -1.0
        st = lower if d == -1.0 else upper
        line[i] = np.nan
        if not np.isnan(atr_i):
            line[i] = st
            direction[i] = d
        lower_prev, upper_prev, st_prev, atr_prev, close_prev = lower, upper, st, atr_i, c[i]
    return line, direction


def supertrend(high: Any, low: Any, close: Any, period: int = 10, multiplier: float = 3.0) -> tuple[F64, F64]:
    """TradingView ``ta.supertrend(multiplier, period)`` → (line, direction).

    Direction follows TradingView: **-1 = uptrend** (the line is the lower band, under price), **+1 = downtrend**
    (the line is the upper band). Both are NaN while the ATR warms up (the first ``period - 1`` bars); the first
    valid bar is always +1, as in Pine. (With ``period=1`` Pine's definition leaves the line at 0 on bar 0, its
    ``nz()`` upper band; kept for fidelity, it matters for nothing after that bar.)
    """
    h, lo, c = as_columns(high=high, low=low, close=close)
    return _supertrend(h, lo, c, tv_atr(h, lo, c, check_period(period)), float(multiplier))


@njit(cache=True, nogil=True)
def _pine_max(a: float, b: float) -> float:  # pragma: no cover - compiled
    return np.nan if np.isnan(a) or np.isnan(b) else max(a, b)


@njit(cache=True, nogil=True)
def _pine_min(a: float, b: float) -> float:  # pragma: no cover - compiled
    return np.nan if np.isnan(a) or np.isnan(b) else min(a, b)


@njit(cache=True, nogil=True)
def _ut_bot(src: F64, atr: F64, key_value: float) -> tuple[F64, Bool, Bool]:  # pragma: no cover - compiled
    """Returns (stop, buy, sell); ``stop`` IS the ``atr`` buffer, overwritten in place (see ``_supertrend``)."""
    n = len(src)
    stop = atr
    buy = np.zeros(n, dtype=np.bool_)
    sell = np.zeros(n, dtype=np.bool_)
    stop_prev = np.nan
    src_prev = np.nan
    for i in range(n):
        s = src[i]
        loss = key_value * atr[i]
        p = 0.0 if np.isnan(stop_prev) else stop_prev  # nz(xATRTrailingStop[1], 0)
        if s > p and src_prev > p:
            st = _pine_max(p, s - loss)
        elif s < p and src_prev < p:
            st = _pine_min(p, s + loss)
        elif s > p:
            st = s - loss
        else:
            st = s + loss
        stop[i] = st
        # ema(src, 1) is src itself, so above = crossover(src, stop) and below = crossover(stop, src).
        buy[i] = s > st and src_prev <= stop_prev
        sell[i] = s < st and stop_prev <= src_prev
        stop_prev = st
        src_prev = s
    return stop, buy, sell


def ut_bot(
    open: Any,  # noqa: A002
    high: Any,
    low: Any,
    close: Any,
    key_value: float = 1.0,
    atr_period: int = 10,
    heikin_ashi: bool = False,
) -> tuple[F64, Bool, Bool]:
    """UT Bot Alerts (Yo_adriiiiaan / QuantNomad) → (trailing_stop, buy, sell).

    ``nLoss = key_value * ta.atr(atr_period)`` on the real candles; the source is the close, or the Heikin Ashi
    close ``(o + h + l + c) / 4`` when ``heikin_ashi``. The stop ratchets up under a rising source and down over a
    falling one, and jumps to the other side when the source crosses it. ``buy`` = source crosses above the stop,
    ``sell`` = crosses below. The stop is NaN for the first ``atr_period - 1`` bars and no signal fires on the
    first valid bar (there is no previous stop to cross).
    """
    o, h, lo, c = as_columns(open=open, high=high, low=low, close=close)
    if not np.isfinite(key_value) or key_value < 0:
        raise ValueError(f"key_value must be a finite number >= 0, got {key_value!r}")
    atr = tv_atr(h, lo, c, check_period(atr_period, "atr_period"))
    src = (o + h + lo + c) / 4.0 if heikin_ashi else c
    return _ut_bot(np.ascontiguousarray(src), atr, float(key_value))
