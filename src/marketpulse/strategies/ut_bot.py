"""UT Bot: the ATR trailing-stop alerts, or QuantNomad's always-in-market strategy built on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from marketpulse.indicators import ut_bot
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import Param, Signals, Strategy, register


@register
class UtBot(Strategy):
    """``mode=alerts``: a buy alert opens a long, a sell alert closes it (flat in between; what a spot trader
    acting on the "UT Long"/"UT Short" alerts does). ``mode=always_in``: QuantNomad's "UT Bot Strategy"
    (``strategy.entry("long", true, when=buy)`` / ``strategy.entry("short", false, when=sell)``), which reverses
    long/short on every signal and so is always in the market after the first one."""

    name: ClassVar[str] = "ut_bot"
    description: ClassVar[str] = "UT Bot ATR trailing stop: alerts (long/flat) or always-in (flip long/short)."
    params: ClassVar[tuple[Param, ...]] = (
        Param("key_value", 1.0, low=0.05, high=20.0, grid=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0), help="ATR multiple"),
        Param("atr_period", 10, low=1, high=500, grid=(5, 10, 14, 20, 30), help="ATR period"),
        Param("heikin_ashi", False, help="use the Heikin Ashi close as the source"),
        Param("mode", "alerts", choices=("alerts", "always_in"), help="alerts: long/flat; always_in: flip"),
    )

    def signals(self, candles: CandleFrame, params: Mapping[str, Any]) -> Signals:
        _, buy, sell = ut_bot(
            candles.open, candles.high, candles.low, candles.close,
            key_value=params["key_value"], atr_period=params["atr_period"], heikin_ashi=params["heikin_ashi"],
        )
        if params["mode"] == "always_in":
            return Signals(long_entries=buy, long_exits=sell, short_entries=sell, short_exits=buy)
        none = np.zeros(len(candles), dtype=np.bool_)
        return Signals(long_entries=buy, long_exits=sell, short_entries=none, short_exits=none.copy())
