"""Small deterministic candles for backtest tests."""

from __future__ import annotations

import numpy as np
import pytest

from marketpulse.marketdata.frame import CandleFrame


def random_walk(n: int, seed: int = 7, step_ms: int = 60_000, start_ms: int = 1_700_000_000_000) -> CandleFrame:
    """A seeded random walk with plausible OHLC: open = previous close, wicks beyond the body."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 2e-3, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0, 1e-3, (2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    time = start_ms - start_ms % step_ms + np.arange(n, dtype=np.int64) * step_ms
    return CandleFrame(time, open_, high, low, close, rng.uniform(1, 10, n), "TESTUSDT", "1m")


@pytest.fixture
def walk() -> CandleFrame:
    return random_walk(3000)


@pytest.fixture
def make_walk():  # type: ignore[no-untyped-def]
    """The random_walk factory, for tests that need several or bigger walks."""
    return random_walk
