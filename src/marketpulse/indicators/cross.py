"""Crossing events, Pine's ``ta.crossover`` / ``ta.crossunder`` over arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from marketpulse.indicators._arrays import Bool, as_series


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    x = as_series(a, "a")
    y = np.broadcast_to(np.asarray(b, dtype=np.float64), x.shape)  # b may be a level such as 30.0
    return x, y


def crossover(a: Any, b: Any) -> Bool:
    """True where ``a > b`` now and ``a <= b`` on the previous bar (NaN on either bar: False)."""
    x, y = _pair(a, b)
    out = np.zeros(len(x), dtype=np.bool_)
    out[1:] = (x[1:] > y[1:]) & (x[:-1] <= y[:-1])
    return out


def crossunder(a: Any, b: Any) -> Bool:
    """True where ``a < b`` now and ``a >= b`` on the previous bar (NaN on either bar: False)."""
    x, y = _pair(a, b)
    out = np.zeros(len(x), dtype=np.bool_)
    out[1:] = (x[1:] < y[1:]) & (x[:-1] >= y[:-1])
    return out
