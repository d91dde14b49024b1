"""Try before you save: replay stored candles through a fresh engine holding only this rule. Pure (the candles are
loaded by the caller).

Each candle of the replay is a tick at its close time (price = close) and then a closed bar, so price conditions,
moves, indicators and bar-close rules behave as they would have live at candle resolution; fields the candle
history doesn't hold (funding, open interest, 24h figures) and events never match in a preview, and the answer
says which conditions could not be replayed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from marketpulse.accounts.plans import CHANNEL_CREDIT_COSTS
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.models import Candle
from marketpulse.rules.engine import Match, RuleEngine, compile_rule_for
from marketpulse.rules.feeds import MarketFeed
from marketpulse.rules.model import INDICATORS, EventCondition, RuleIn, leaves

REPLAYABLE = frozenset({"price", "mark_price", "change_pct_1h", "change_pct_4h", "volume_ratio_1h", *INDICATORS})


@dataclass(frozen=True)
class Preview:
    fires: list[Match]
    credits_per_fire: int
    not_replayable: list[str]

    @property
    def credits(self) -> int:
        return self.credits_per_fire * len(self.fires)


def credits_per_fire(channel_kinds: Sequence[str]) -> int:
    """What one fire costs on these channels: the plan table's costs, as the dispatcher charges them (a channel the
    table doesn't list, apprise, costs what a webhook does)."""
    return sum(CHANNEL_CREDIT_COSTS.get(kind, CHANNEL_CREDIT_COSTS["webhook"]) for kind in channel_kinds)


def not_replayable(rule: RuleIn) -> list[str]:
    out = []
    for leaf in leaves(rule.conditions):
        name = f"event {leaf.event}" if isinstance(leaf, EventCondition) else leaf.field
        if isinstance(leaf, EventCondition) or leaf.field not in REPLAYABLE:
            out.append(name)
    return sorted(set(out))


def replay(rule: RuleIn, frames: Mapping[str, CandleFrame], channel_kinds: Sequence[str],
           limit: int = 1000) -> Preview:
    """When `rule` would have fired over the candles of `frames` (symbol → candles, one interval), in time order."""
    engine = RuleEngine()
    symbols = list(frames)
    engine.add(compile_rule_for("preview", "preview", rule, watchlist_symbols=symbols))
    feed = MarketFeed(engine)
    fires: list[Match] = []
    for close_ms, rows in _by_close_time(frames):
        syms = np.fromiter((engine.symbol(c.symbol) for c in rows), np.int32, len(rows))
        price = np.fromiter((c.close for c in rows), np.float64, len(rows))
        for matches in feed.on_values(close_ms, syms, {"price": price}):
            fires.extend(matches)
        fires.extend(feed.on_candles(rows))
        if len(fires) >= limit or not len(engine):  # enough to show; or a `once` rule that fired
            break
    return Preview(fires[:limit], credits_per_fire(channel_kinds), not_replayable(rule))


def _by_close_time(frames: Mapping[str, CandleFrame]) -> list[tuple[int, list[Candle]]]:
    by_time: dict[int, list[Candle]] = {}
    for symbol, f in frames.items():
        step = int(f.time[1] - f.time[0]) if len(f) > 1 else 60_000
        for i in range(len(f)):
            c = Candle(symbol, f.interval, int(f.time[i]), float(f.open[i]), float(f.high[i]), float(f.low[i]),
                       float(f.close[i]), float(f.volume[i]), 0.0)
            by_time.setdefault(int(f.time[i]) + step, []).append(c)
    return sorted(by_time.items())
