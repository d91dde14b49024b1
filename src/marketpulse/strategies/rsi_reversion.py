"""RSI mean reversion: buy oversold, sell overbought."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from marketpulse.indicators import crossover, crossunder, rsi
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import Param, Signals, Strategy, register


@register
class RsiReversion(Strategy):
    """Long when RSI falls below ``lower``, closed when it rises above ``upper``; short the mirror image.

    Entries are the crossing events, not the state, so a position closed in an extreme zone is not reopened on
    the next bar while RSI is still there.
    """

    name: ClassVar[str] = "rsi_reversion"
    description: ClassVar[str] = "Long on RSI crossing under lower, short on crossing over upper; exit at the other."
    params: ClassVar[tuple[Param, ...]] = (
        Param("period", 14, low=2, high=500, grid=(7, 14, 21), help="RSI period"),
        Param("lower", 30.0, low=0.0, high=100.0, grid=(20.0, 25.0, 30.0, 35.0), help="oversold level"),
        Param("upper", 70.0, low=0.0, high=100.0, grid=(65.0, 70.0, 75.0, 80.0), help="overbought level"),
    )

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        if params["lower"] >= params["upper"]:
            raise ValueError(f"parameter 'lower' ({params['lower']}) must be less than 'upper' ({params['upper']})")

    def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
        value = rsi(candles.close, params["period"])
        oversold = crossunder(value, params["lower"])
        overbought = crossover(value, params["upper"])
        return Signals(long_entries=oversold, long_exits=overbought, short_entries=overbought, short_exits=oversold)
