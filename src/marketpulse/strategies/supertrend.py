"""SuperTrend: long in its uptrend, short in its downtrend, flipping when it flips."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from marketpulse.indicators import supertrend
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import Param, Signals, Strategy, register


@register
class SuperTrend(Strategy):
    name: ClassVar[str] = "supertrend"
    description: ClassVar[str] = "Long when TradingView's SuperTrend turns up, short when it turns down."
    params: ClassVar[tuple[Param, ...]] = (
        Param("period", 10, low=1, high=500, grid=(7, 10, 14, 20), help="ATR period"),
        Param("multiplier", 3.0, low=0.1, high=20.0, grid=(1.0, 2.0, 3.0, 4.0), help="ATR multiple"),
    )

    def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
        _, direction = supertrend(candles.high, candles.low, candles.close, params["period"], params["multiplier"])
        previous = np.full_like(direction, np.nan)
        previous[1:] = direction[:-1]
        # TradingView's convention: -1 is the uptrend. Comparisons with NaN (warm-up) are False: no signal.
        turns_up = (direction == -1.0) & (previous == 1.0)
        turns_down = (direction == 1.0) & (previous == -1.0)
        return Signals(long_entries=turns_up, long_exits=turns_down, short_entries=turns_down, short_exits=turns_up)
