"""Small deterministic candles for backtest tests."""

from __future__ import annotations

import functools

import pytest

from marketpulse.marketdata.frame import CandleFrame
from support.walks import random_walk

# Prices near 100, so a 10k account can hold whole units (the backtesting.py parity test trades size 1).
test_walk = functools.partial(random_walk, start=100.0, symbol="TESTUSDT")


@pytest.fixture
def walk() -> CandleFrame:
    return test_walk(3000)


@pytest.fixture
def make_walk():  # type: ignore[no-untyped-def]
    """The random_walk factory, for tests that need several or bigger walks."""
    return test_walk
