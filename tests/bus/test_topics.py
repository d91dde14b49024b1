"""Topic payloads: every topic round-trips its Struct through the wire form; batch topics keep their valid rows."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from marketpulse.bus import topics
from marketpulse.bus.topics import UndecodableMessage
from marketpulse.detection.models import VolumeAlert
from marketpulse.marketdata.models import Candle, Liquidation, MarketRow

T0 = 1_760_126_400_000
ROW = MarketRow("BTCUSDT", T0, 60_000.0, 1.5, 1e10, funding_rate=0.0001, open_interest_usd=8e9, price_precision=1)
SAMPLES: dict[str, Any] = {
    "market.tickers": topics.TickersEvent(T0, [ROW]),
    "market.candles": topics.CandlesEvent([Candle("BTCUSDT", "1m", T0, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0)]),
    "market.open_interest": topics.OpenInterestEvent(T0, {"BTCUSDT": 8e9}),
    "market.liquidations": topics.LiquidationsEvent([Liquidation("BTCUSDT", "long", 60_000.0, 0.5, 30_000.0, T0)]),
    "alerts.volume": VolumeAlert(symbol="BTCUSDT", asset="BTC", current_volume=12e6, previous_volume=3e6,
                                 volume_ratio=4.0, price=60_000.0, funding_rate=None, candle_direction="bullish",
                                 alert_type="SPIKE", message="BTCUSDT volume spike 4.00x", timestamp=T0 + 300_000,
                                 hour_timestamp=T0, id="a1"),
    "paper.fills": topics.PaperFill(owner_id="default", order_id="o1", fill_id="f1", symbol="BTCUSDT", side="buy",
                                    quantity=0.1, price=60_000.0, fee=2.4, realized_pnl=0.0, time=T0),
    "risk.halts": topics.RiskHalt(owner_id="default", reason="daily_loss_limit", equity=9_400.0,
                                  day_start_equity=10_000.0, limit_pct=0.05, halted_until=T0 + 3_600_000, time=T0),
    "notifications.user": topics.UserNotification(owner_id="u1", id=7, key="k" * 64, title="BTC above 100k",
                                                  text="crossed", kind="price", time=T0, symbol="BTCUSDT"),
    "accounts.changed": topics.AccountChanged(user_id="u1", plan="elite", status="active"),
    "rules.changed": topics.RulesChanged(rule_id="r1", owner_id="u1", version=3, deleted=True),
    "watchlists.changed": topics.WatchlistChanged(watchlist_id="w1", owner_id="u1", deleted=True),
    "signals.received": topics.SignalReceived(signal_id="s1", config_id="c1"),
    "signals.configs_changed": topics.SignalConfigChanged(config_id="c1"),
}


@pytest.mark.parametrize("topic", topics.ALL, ids=lambda t: t.name)
def test_every_topic_round_trips_its_payload(topic: topics.Topic[Any]) -> None:
    payload = SAMPLES[topic.name]
    assert isinstance(payload, topic.payload)
    assert topic.decode(topic.encode(payload)).payload == payload


def test_wire_forms_keep_their_established_names() -> None:
    # Producers outside this code base (and stored streams) write these names: camelCase where the wire always was.
    assert msgspec.json.decode(topics.MARKET_OPEN_INTEREST.encode(SAMPLES["market.open_interest"])) == {
        "asOf": T0, "data": {"BTCUSDT": 8e9}}
    assert "hourTimestamp" in msgspec.json.decode(topics.ALERTS_VOLUME.encode(SAMPLES["alerts.volume"]))


def test_open_interest_keeps_its_usable_figures() -> None:
    decoded = topics.MARKET_OPEN_INTEREST.decode(b'{"asOf": 5, "data": {"A": 1, "B": -2, "C": "x", "D": 1e999}}')
    assert (decoded.payload, decoded.rejected) == (topics.OpenInterestEvent(5, {"A": 1.0}), 3)


def test_ticker_rows_are_kept_or_dropped_one_by_one() -> None:
    good = msgspec.to_builtins(ROW)
    raw = msgspec.json.encode({"time": T0, "rows": [good, {**good, "price": None}, {**good, "symbol": 5}]})
    decoded = topics.MARKET_TICKERS.decode(raw)
    assert (decoded.payload.rows, decoded.rejected) == ([ROW], 2)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"{not json", "not_json"),
        (b'["a list"]', "schema"),
        (b'{"candles": "none"}', "schema"),
        (b'{"interval": "7m", "candles": []}', "schema"),  # the envelope must be valid on its own
    ],
)
def test_a_batch_that_cannot_be_decoded_names_why(raw: bytes, kind: str) -> None:
    with pytest.raises(UndecodableMessage) as err:
        topics.MARKET_CANDLES.decode(raw)
    assert err.value.kind == kind


def test_a_bad_liquidation_is_dropped_and_the_rest_kept() -> None:
    good = {"symbol": "BTCUSDT", "side": "long", "price": 60_000.0, "quantity": 0.5, "usd": 30_000.0, "time": T0}
    raw = msgspec.json.encode({"liquidations": [good, {**good, "side": "sideways"}, {**good, "price": -1.0},
                                                {**good, "quantity": "x"}]})
    decoded = topics.MARKET_LIQUIDATIONS.decode(raw)
    assert [liq.side for liq in decoded.payload.liquidations] == ["long"]
    assert decoded.rejected == 3
