"""Crossing events, Pine's ``ta.crossover`` / ``ta.crossunder`` over arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from marketpulse.indicators._arrays import Bool, as_series


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    x = as_series(a, "a")
    y = np.broadcast_to(np.asarray(b, dtype=np.float64), x.shape)  # b may be a level such as 30.0
    return x, y


# One pass without temporaries: a sweep calls these once per combination over a million bars, where numpy's
# four comparisons and their intermediate arrays cost more than the engine's own pass. NaN compares False.
@njit(cache=True, nogil=True)
def _cross_up(x: Any, y: Any) -> Bool:  # pragma: no cover - compiled
    out = np.zeros(len(x), dtype=np.bool_)
    for i in range(1, len(x)):
        out[i] = x[i] > y[i] and x[i - 1] <= y[i - 1]
    return out


@njit(cache=True, nogil=True)
def _cross_down(x: Any, y: Any) -> Bool:  # pragma: no cover - compiled
    out = np.zeros(len(x), dtype=np.bool_)
    for i in range(1, len(x)):
        out[i] = x[i] < y[i] and x[i - 1] >= y[i - 1]
    return out


def crossover(a: Any, b: Any) -> Bool:
    """True where ``a > b`` now and ``a <= b`` on the previous bar (NaN on either bar: False)."""
    return _cross_up(*_pair(a, b))


def crossunder(a: Any, b: Any) -> Bool:
    """True where ``a < b`` now and ``a >= b`` on the previous bar (NaN on either bar: False)."""
    return _cross_down(*_pair(a, b))
