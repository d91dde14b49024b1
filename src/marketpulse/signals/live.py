"""Signals computed by the platform on closed bars (pure, no I/O): what a webhook would bring, from our own data.

`LiveSignals` folds closed candles (the bus's 1m ones, or candles of the config's own interval) into the config's
bars and, when a bar closes, runs the strategy over every bar it holds, exactly as the offline indicator runs over
the same bars (`strategy_actions`), and answers the closed bar's action if it has one. Holding the bars from the
start is what makes the live path give the offline signals (the ATR's RMA and the ratcheting stop carry the whole
history); past `MAX_BARS` the oldest are dropped, and by then the RMA's seed weighs less than 1e-100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from marketpulse import indicators
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import MS_BY_NAME, Interval
from marketpulse.marketdata.models import Candle

MAX_BARS = 5_000
Bool = npt.NDArray[np.bool_]


def strategy_actions(strategy: str, params: dict[str, Any], frame: CandleFrame) -> tuple[Bool, Bool]:
    """(buy, sell) per bar: UT Bot's alerts as the indicator gives them (with `ema_period` > 1, the EMA of the
    source crossing the stop, as the Pine script says); another strategy's long entries and exits."""
    if strategy == "ut_bot":
        stop, buy, sell = indicators.ut_bot(frame.open, frame.high, frame.low, frame.close,
                                            key_value=params["key_value"], atr_period=params["atr_period"],
                                            heikin_ashi=params["heikin_ashi"])
        period = int(params.get("ema_period", 1))
        if period == 1:
            return buy, sell
        src = (frame.open + frame.high + frame.low + frame.close) / 4 if params["heikin_ashi"] else frame.close
        ema = indicators.ema(src, period)
        return (src > stop) & indicators.crossover(ema, stop), (src < stop) & indicators.crossover(stop, ema)
    from marketpulse.strategies import get_strategy

    cls = get_strategy(strategy)
    sig = cls().signals(frame, {k: v for k, v in params.items() if k != "ema_period"})
    return sig.long_entries, sig.long_exits | sig.short_entries


@dataclass
class LiveSignals:
    symbol: str
    interval: Interval
    strategy: str
    params: dict[str, Any]
    bars: list[tuple[int, float, float, float, float, float]] = field(default_factory=list)  # t, o, h, l, c, v
    building: list[float] | None = None  # the bar being folded from finer candles: [t, o, h, l, c, v]

    def on_candle(self, c: Candle) -> tuple[str, int, float] | None:
        """Fold a closed candle in; when it closes a bar, that bar's (action, open time, close) or None."""
        if c.symbol != self.symbol or not c.closed:
            return None
        step = self.interval.ms
        size = MS_BY_NAME[c.interval]
        if size > step or step % size:
            return None  # coarser or misaligned candles can't build this interval's bars
        start = c.open_time - c.open_time % step
        bar = self.building
        if bar is None or bar[0] != start:
            if self.bars and start <= self.bars[-1][0]:
                return None  # a repeat of a bar already closed (a redelivered message)
            if c.open_time != start:
                self.building = None
                return None  # joined mid-bar: a partial bar would be a different bar from the offline one
            bar = self.building = [start, c.open, c.high, c.low, c.close, c.volume]
        else:
            bar[2], bar[3], bar[4], bar[5] = max(bar[2], c.high), min(bar[3], c.low), c.close, bar[5] + c.volume
        if (c.open_time + size) % step:
            return None
        self.bars.append((int(bar[0]), bar[1], bar[2], bar[3], bar[4], bar[5]))
        del self.bars[:-MAX_BARS]
        self.building = None
        return self._last_action()

    def warm(self, candles: list[Candle]) -> None:
        """Start from stored closed bars of this interval (a worker taking the lease over): the strategy then runs
        over the same history as offline, and nothing is raised for them."""
        self.bars = [(c.open_time, c.open, c.high, c.low, c.close, c.volume) for c in candles
                     if c.closed and c.interval == self.interval.value][-MAX_BARS:]
        self.building = None

    def frame(self) -> CandleFrame:
        cols = np.array(self.bars, dtype=np.float64).T
        return CandleFrame(cols[0].astype(np.int64), cols[1], cols[2], cols[3], cols[4], cols[5], self.symbol,
                           self.interval.value)

    def _last_action(self) -> tuple[str, int, float] | None:
        buy, sell = strategy_actions(self.strategy, self.params, self.frame())
        t, close = self.bars[-1][0], self.bars[-1][4]
        if buy[-1]:
            return "buy", t, close
        if sell[-1]:
            return "sell", t, close
        return None
