"""EMA crossover: long while the fast EMA is above the slow one, short while below."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from marketpulse.indicators import crossover, crossunder, ema
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import Param, Signals, Strategy, register


@register
class EmaCross(Strategy):
    name: ClassVar[str] = "ema_cross"
    description: ClassVar[str] = "Long when EMA(fast) crosses above EMA(slow), short when it crosses below."
    params: ClassVar[tuple[Param, ...]] = (
        # The default sweep grid is the benchmark's: fast 5..20 x slow 20..60 step 5 = 143 valid combinations.
        Param("fast", 12, low=2, high=500, grid=tuple(range(5, 21)), help="fast EMA period"),
        Param("slow", 26, low=3, high=2000, grid=tuple(range(20, 61, 5)), help="slow EMA period"),
    )

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        if params["fast"] >= params["slow"]:
            raise ValueError(f"parameter 'fast' ({params['fast']}) must be less than 'slow' ({params['slow']})")

    def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
        fast = ema(candles.close, params["fast"])
        slow = ema(candles.close, params["slow"])
        up = crossover(fast, slow)
        down = crossunder(fast, slow)
        return Signals(long_entries=up, long_exits=down, short_entries=down, short_exits=up)
