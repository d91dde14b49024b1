"""Market feeds: a move against the value a window ago, indicators on closed bars, and bar-close rules, with the
expected fires worked out by hand."""

from __future__ import annotations

from marketpulse.marketdata.models import Candle, MarketRow
from marketpulse.rules.engine import RuleEngine, compile_rule_for
from marketpulse.rules.feeds import MarketFeed
from marketpulse.rules.model import RuleIn

T0 = 1_760_126_400_000
MIN = 60_000


def feed_with(conditions: dict, **fields: object) -> MarketFeed:
    engine = RuleEngine()
    body = {"name": "r", "symbol": "BTCUSDT", "conditions": conditions, "frequency": "every_time"} | fields
    engine.add(compile_rule_for("r", "o", RuleIn.model_validate(body)))
    return MarketFeed(engine)


def test_moves_up_pct_compares_with_the_value_a_window_ago() -> None:
    feed = feed_with({"all": [{"field": "price", "op": "moves_up_pct", "value": 2, "window": "5m"}]})
    prices = [100, 100, 100, 100, 100, 100, 101, 103, 103]  # minute 7: 103 against minute 2's 100 = +3%
    fired = [i for i, p in enumerate(prices)
             for batch in feed.on_tickers(T0 + i * MIN, [MarketRow("BTCUSDT", T0 + i * MIN, p, 0.0, 1e9)])
             if len(batch)]
    assert fired == [7]


def candle(i: int, close: float, interval: str = "1m") -> Candle:
    return Candle("BTCUSDT", interval, T0 + i * MIN, close, close, close, close, 1.0, close)


def test_an_indicator_is_read_on_closed_bars() -> None:
    feed = feed_with({"all": [{"field": "sma", "period": 3, "op": "gt", "value": 10}]})
    closes = [9, 9, 9, 9, 12, 12]  # SMA(3): -, -, 9, 9, 10, 11: above 10 at the sixth close
    fired = [i for i, c in enumerate(closes) if feed.on_candles([candle(i, c)])]
    assert fired == [5]


def test_bar_close_rules_see_each_bar_once_at_its_close() -> None:
    feed = feed_with({"all": [{"field": "price", "op": "crosses_above", "value": 100}]},
                     frequency="once_per_bar_close", interval="5m")
    ticks = [99, 101, 99, 101]  # ticks cross back and forth, but bar-close values move only at closes
    for i, p in enumerate(ticks):
        assert not any(feed.on_tickers(T0 + i * MIN, [MarketRow("BTCUSDT", T0 + i * MIN, p, 0.0, 1e9)]))
    closes = [99] * 5 + [101] * 5  # the first 5m bar closes at 99, the second at 101
    fired = [m.time_ms for i, c in enumerate(closes) for m in feed.on_candles([candle(i, c)])]
    assert fired == [T0 + 10 * MIN]
