"""The one seeded random walk of candles the tests use (indicators, strategies, backtests, paper trading)."""

from __future__ import annotations

import numpy as np

from marketpulse.marketdata.frame import CandleFrame


def random_walk(n: int, seed: int = 7, *, start: float = 30_000.0, step_ms: int = 60_000,
                start_ms: int = 1_700_000_000_000, symbol: str = "RANDOM") -> CandleFrame:
    """Candles of a seeded random walk with realistic wicks, small gaps between a close and the next open, and
    volume; `start_ms` is floored to the step so every open time sits on its interval's boundary."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, 0.0015, n)))
    open_ = np.empty(n)
    open_[0] = start
    open_[1:] = close[:-1] * (1 + rng.normal(0.0, 0.0003, n - 1))
    high = np.maximum(open_, close) * (1 + rng.exponential(0.0008, n))
    low = np.minimum(open_, close) * (1 - rng.exponential(0.0008, n))
    volume = rng.gamma(2.0, 5.0, n)
    time = start_ms - start_ms % step_ms + step_ms * np.arange(n, dtype=np.int64)
    return CandleFrame(time, open_, high, low, close, volume, symbol, "1m")
