"""Price transforms: Heikin Ashi candles and the volume-weighted average price."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from marketpulse.indicators._arrays import F64, Bool, as_columns

DAY_MS = 86_400_000


@njit(cache=True, nogil=True)
def _heikin_ashi(o: F64, h: F64, lo: F64, c: F64) -> tuple[F64, F64, F64, F64]:  # pragma: no cover - compiled
    n = len(c)
    ha_open = np.full(n, np.nan)
    ha_high = np.full(n, np.nan)
    ha_low = np.full(n, np.nan)
    ha_close = np.full(n, np.nan)
    prev_open = np.nan
    prev_close = np.nan
    for i in range(n):
        if np.isnan(o[i]) or np.isnan(h[i]) or np.isnan(lo[i]) or np.isnan(c[i]):
            prev_open = np.nan  # a hole restarts the recursion rather than inventing a candle
            continue
        close_i = (o[i] + h[i] + lo[i] + c[i]) / 4.0
        open_i = (o[i] + c[i]) / 2.0 if np.isnan(prev_open) else (prev_open + prev_close) / 2.0
        ha_open[i] = open_i
        ha_close[i] = close_i
        ha_high[i] = max(h[i], max(open_i, close_i))
        ha_low[i] = min(lo[i], min(open_i, close_i))
        prev_open = open_i
        prev_close = close_i
    return ha_open, ha_high, ha_low, ha_close


def heikin_ashi(open: Any, high: Any, low: Any, close: Any) -> tuple[F64, F64, F64, F64]:  # noqa: A002
    """Heikin Ashi (open, high, low, close), TradingView's definition.

    close = (o + h + l + c) / 4; open = (previous HA open + previous HA close) / 2, seeded with (o + c) / 2 on the
    first bar; high/low = extremes of the real high/low and the HA open/close.
    """
    o, h, lo, c = as_columns(open=open, high=high, low=low, close=close)
    return _heikin_ashi(o, h, lo, c)


@njit(cache=True, nogil=True)
def _vwap(price: F64, volume: F64, starts: Bool) -> F64:  # pragma: no cover - compiled
    n = len(price)
    out = np.full(n, np.nan)
    pv = 0.0
    vol = 0.0
    for i in range(n):
        if starts[i]:
            pv = 0.0
            vol = 0.0
        if np.isnan(price[i]) or np.isnan(volume[i]):
            continue
        pv += price[i] * volume[i]
        vol += volume[i]
        if vol > 0.0:
            out[i] = pv / vol
    return out


def session_starts(time_ms: Any, session_ms: int = DAY_MS, offset_ms: int = 0) -> Bool:
    """True on the first bar of each session of ``session_ms`` (default: UTC days), an anchor for ``vwap``.

    ``offset_ms`` moves the boundary: sessions start ``offset_ms`` after each multiple of ``session_ms``
    (``offset_ms=8 * 3_600_000`` for days starting 08:00 UTC).
    """
    t = np.asarray(time_ms, dtype=np.int64)
    session = (t - offset_ms) // session_ms
    starts = np.ones(len(t), dtype=np.bool_)
    starts[1:] = session[1:] != session[:-1]
    return starts


def vwap(high: Any, low: Any, close: Any, volume: Any, anchor: Any = None) -> F64:
    """Volume-weighted average of the typical price (h + l + c) / 3, cumulated since the last anchor.

    ``anchor`` is None (one session from the first bar) or a boolean array, True on the bars where a new
    session starts (``session_starts(candles.time)`` for UTC days, like TradingView's default session anchor).
    Bars before any volume has traded are NaN.
    """
    h, lo, c, v = as_columns(high=high, low=low, close=close, volume=volume)
    starts = np.zeros(len(c), dtype=np.bool_)
    if anchor is not None:
        starts = np.asarray(anchor, dtype=np.bool_)
        if starts.shape != c.shape:
            raise ValueError(f"anchor must be a boolean array of shape {c.shape}, got {starts.shape}")
    return _vwap((h + lo + c) / 3.0, v, np.ascontiguousarray(starts))
