from __future__ import annotations

from pathlib import Path

import pytest

from marketpulse.marketdata.frame import CandleFrame
from support.walks import random_walk

from .market_samples import btc_candles


@pytest.fixture(scope="session")
def btc(shared_data: Path) -> CandleFrame:
    return btc_candles(shared_data)


@pytest.fixture(scope="session")
def walk() -> CandleFrame:
    return random_walk(5_000)


@pytest.fixture(params=["walk", "btc"])
def candles(request: pytest.FixtureRequest) -> CandleFrame:
    """Each TA-Lib comparison runs on the seeded walk everywhere and on real BTCUSDT minutes when present."""
    frame: CandleFrame = request.getfixturevalue(request.param)
    return frame
