"""The one camelCase rule: every wire surface that speaks camelCase names its fields through `wire.camel`."""

from __future__ import annotations

import pytest

from marketpulse.detection.models import VolumeAlert
from marketpulse.marketdata.models import Candle, MarketRow
from marketpulse.marketdata.views import CandleOut, MarketRowOut, candle_to_wire
from marketpulse.realtime.market_feed import patch_of, row_to_wire
from marketpulse.wire import camel


@pytest.mark.parametrize(("snake", "wire"), [
    ("open_time", "openTime"), ("quote_volume_24h", "quoteVolume24h"), ("change_pct_24h", "changePct24h"),
    ("open_interest_usd", "openInterestUsd"), ("symbol", "symbol"), ("as_of", "asOf"),
])
def test_camel(snake: str, wire: str) -> None:
    assert camel(snake) == wire


def test_every_camel_surface_agrees_with_the_rule() -> None:
    row = MarketRow("BTCUSDT", 1, 2.0, 3.0, 4.0, None, 5.0, 2)
    assert list(row_to_wire(row)) == [camel(f) for f in MarketRow.__struct_fields__]
    assert "fundingRate" not in patch_of(row) and patch_of(row)["openInterestUsd"] == 5.0
    # The HTTP schema lists the names the feed sends, in its order, then the columns only the API derives (from
    # stored candles, OI snapshots and liquidations), each named by the same rule.
    fed = list(row_to_wire(row))
    http = list(MarketRowOut.model_json_schema(mode="serialization")["properties"])
    assert http[:len(fed)] == fed
    derived = [name for name in MarketRowOut.model_fields if camel(name) not in fed]
    assert http[len(fed):] == [camel(name) for name in derived] and "liquidations24h" in http[len(fed):]
    candle = Candle("BTCUSDT", "1m", 1_760_126_400_000, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0)
    assert list(candle_to_wire(candle)) == list(CandleOut.model_json_schema(mode="serialization")["properties"])
    alert = VolumeAlert(symbol="BTCUSDT", asset="BTC", current_volume=2.0, previous_volume=1.0, volume_ratio=2.0,
                        price=None, funding_rate=None, candle_direction="bullish", alert_type="SPIKE", message="m",
                        timestamp=1, hour_timestamp=0)
    assert list(alert.to_wire()) == [camel(f) for f in VolumeAlert.__struct_fields__]
