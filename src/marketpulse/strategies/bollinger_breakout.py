"""Bollinger breakout: follow a close outside the bands, exit back at the middle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from marketpulse.indicators import bollinger, crossover, crossunder
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import Param, Signals, Strategy, register


@register
class BollingerBreakout(Strategy):
    name: ClassVar[str] = "bollinger_breakout"
    description: ClassVar[str] = "Long on a close above the upper band, short below the lower; exit at the middle."
    params: ClassVar[tuple[Param, ...]] = (
        Param("period", 20, low=2, high=1000, grid=(10, 20, 30, 50), help="SMA / standard deviation window"),
        Param("k", 2.0, low=0.1, high=10.0, grid=(1.5, 2.0, 2.5, 3.0), help="band width in standard deviations"),
    )

    def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
        close = candles.close
        upper, middle, lower = bollinger(close, params["period"], params["k"])
        return Signals(
            long_entries=crossover(close, upper),
            long_exits=crossunder(close, middle),
            short_entries=crossunder(close, lower),
            short_exits=crossover(close, middle),
        )
