"""Input checks shared by the indicators: float64 1-D arrays of one length, periods >= 1."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


def as_series(values: Any, name: str = "values") -> F64:
    """A contiguous float64 1-D array (lists and int arrays are accepted; the caller's array is never modified)."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def as_columns(**columns: Any) -> list[F64]:
    """Several series that must have the same length (e.g. high, low, close)."""
    arrays = [as_series(v, k) for k, v in columns.items()]
    lengths = {k: len(a) for k, a in zip(columns, arrays, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"input lengths differ: {lengths}")
    return arrays


def check_period(period: Any, name: str = "period") -> int:
    """An int >= 1; anything else is a caller bug worth a clear message (float periods are not rounded silently)."""
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {period!r}")
    return int(period)
