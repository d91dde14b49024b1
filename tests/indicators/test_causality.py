"""Every indicator at bar i depends on bars 0..i only: computing on a prefix gives the prefix of the full result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import marketpulse.indicators as ind
from marketpulse.marketdata.frame import CandleFrame

INDICATORS: dict[str, Callable[[CandleFrame], Any]] = {
    "sma": lambda c: ind.sma(c.close, 20),
    "ema": lambda c: ind.ema(c.close, 20),
    "rma": lambda c: ind.rma(c.close, 20),
    "true_range": lambda c: ind.true_range(c.high, c.low, c.close),
    "atr": lambda c: ind.atr(c.high, c.low, c.close, 14),
    "tv_atr": lambda c: ind.tv_atr(c.high, c.low, c.close, 14),
    "rsi": lambda c: ind.rsi(c.close, 14),
    "macd": lambda c: ind.macd(c.close),
    "bollinger": lambda c: ind.bollinger(c.close),
    "vwap": lambda c: ind.vwap(c.high, c.low, c.close, c.volume, ind.session_starts(c.time)),
    "heikin_ashi": lambda c: ind.heikin_ashi(c.open, c.high, c.low, c.close),
    "supertrend": lambda c: ind.supertrend(c.high, c.low, c.close, 10, 3.0),
    "ut_bot": lambda c: ind.ut_bot(c.open, c.high, c.low, c.close, 1.0, 10),
    "ut_bot_heikin_ashi": lambda c: ind.ut_bot(c.open, c.high, c.low, c.close, 2.0, 5, heikin_ashi=True),
}


def outputs(value: Any) -> tuple[np.ndarray, ...]:
    return value if isinstance(value, tuple) else (value,)


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_prefix_gives_prefix(walk: CandleFrame, name: str) -> None:
    full = outputs(INDICATORS[name](walk))
    for cut in (1, 25, 1_700, 4_999):
        part = outputs(INDICATORS[name](walk.slice(0, cut)))
        for whole, prefix in zip(full, part, strict=True):
            assert len(whole) == len(walk) and len(prefix) == cut
            np.testing.assert_array_equal(prefix, whole[:cut], err_msg=f"{name} cut at {cut}")
