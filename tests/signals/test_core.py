"""Payload normalization, format by format, with bodies as TradingView, OctoBot and 3Commas users write them;
ticker and interval mapping; the bar, dedupe key and stale rule; who sent a request."""

from __future__ import annotations

import ipaddress
import json

import pytest

from marketpulse.marketdata.intervals import Interval
from marketpulse.signals.core import (
    PayloadError,
    UnknownMarket,
    accept,
    address_allowed,
    client_address,
    config_params,
    map_interval,
    map_symbol,
    normalize,
)

BAR = 1_705_312_800_000  # 2024-01-15T10:00:00Z
JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


def test_the_seeds_json() -> None:
    body = {"symbol": "BTCUSDT", "timeframe": "1h", "action": "buy", "price": 45000.50,
            "timestamp": "2024-01-15T10:30:00Z", "strategy": "UT_Bot",
            "parameters": {"ema_period": 9, "atr_period": 10, "multiplier": 3.7}}
    s = normalize(json.dumps(body).encode(), JSON)
    assert (s.action, s.symbol, s.interval, s.price) == ("buy", "BTCUSDT", Interval.H1, 45000.5)
    assert s.bar_time == BAR + 30 * 60_000
    assert s.extra == {"strategy": "UT_Bot", "parameters": {"ema_period": 9, "atr_period": 10, "multiplier": 3.7}}


def test_tradingview_placeholders_rendered_into_json() -> None:
    # What TradingView sends for {"ticker": "{{ticker}}", "exchange": "{{exchange}}", … } on a 4h perpetual.
    body = ('{"ticker": "BTCUSDT.P", "exchange": "BINANCE", "interval": "240", "close": 42917.3,'
            ' "time": "2024-01-15T08:00:00Z", "timenow": "2024-01-15T11:59:58Z",'
            ' "action": "sell", "contracts": "0.5", "market_position": "short",'
            ' "prev_market_position": "long", "plot_0": 43012.55}')
    s = normalize(body.encode(), JSON)
    assert (s.action, s.symbol, s.interval, s.price) == ("sell", "BTCUSDT", Interval.H4, 42917.3)
    assert (s.bar_time, s.fired_at) == (BAR - 2 * 3_600_000, BAR + 2 * 3_600_000 - 2_000)
    assert s.extra["exchange"] == "BINANCE" and s.extra["market_position"] == "short"


def test_a_strategy_alert_without_action_reads_the_market_position() -> None:
    base = {"ticker": "BINANCE:ETHUSDT", "interval": "1D", "close": "2250.1"}
    flat_from_long = {**base, "market_position": "flat", "prev_market_position": "long"}
    assert normalize(json.dumps(flat_from_long).encode(), JSON).action == "sell"
    assert normalize(json.dumps({**base, "market_position": "long"}).encode(), JSON).action == "buy"
    assert normalize(json.dumps({**base, "action": "buy"}).encode(), JSON).interval == Interval.D1


def test_octobot_key_value_lines() -> None:
    body = b"EXCHANGE=binance\nSYMBOL=BTCUSDT\nSIGNAL=BUY\nPRICE=45012.5\nTIMEFRAME=15\n"
    s = normalize(body, TEXT)
    assert (s.action, s.symbol, s.interval, s.price) == ("buy", "BTCUSDT", Interval.M15, 45012.5)
    # TradingView sends a plain-text message as text/plain; semicolons separate keys on one line too.
    assert normalize(b"SYMBOL=ETHUSDT;SIGNAL=SELL", TEXT).action == "sell"


def test_three_commas_json() -> None:
    body = {"secret": "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0", "max_lag": "300", "timestamp": "2024-01-15T10:00:00Z",
            "trigger_price": "45000.1", "tv_exchange": "BINANCE", "tv_instrument": "BTCUSDT.P",
            "action": "enter_long", "bot_uuid": "3f6b1d2e-0c59-4f61-9b1f-8d9f4a2b7c10"}
    s = normalize(json.dumps(body).encode(), JSON)
    assert (s.action, s.symbol, s.price, s.max_lag_s, s.bar_time) == ("buy", "BTCUSDT", 45000.1, 300.0, BAR)
    assert s.secret == body["secret"] and s.extra["bot_uuid"] == body["bot_uuid"]
    for action, side in (("exit_long", "sell"), ("enter_short", "sell"), ("exit_short", "buy")):
        assert normalize(json.dumps({**body, "action": action}).encode(), JSON).action == side


@pytest.mark.parametrize(("ticker", "symbol"), [("BINANCE:BTCUSDT.P", "BTCUSDT"), ("BTCUSDT.P", "BTCUSDT"),
                                                ("BYBIT:ETHUSDT.P", "ETHUSDT"), ("BTCUSDTPERP", "BTCUSDT"),
                                                ("btc/usdt", "BTCUSDT"), ("SOL-USDT", "SOLUSDT"),
                                                ("1000PEPEUSDT", "1000PEPEUSDT")])
def test_tickers_map_to_platform_symbols(ticker: str, symbol: str) -> None:
    assert map_symbol(ticker) == symbol


@pytest.mark.parametrize(("text", "interval"), [("1", "1m"), ("5", "5m"), ("60", "1h"), ("240", "4h"),
                                                ("720", "12h"), ("1D", "1d"), ("D", "1d"), ("1440", "1d"),
                                                ("1h", "1h"), ("15m", "15m")])
def test_intervals_map_to_platform_intervals(text: str, interval: str) -> None:
    assert map_interval(text).value == interval


@pytest.mark.parametrize("text", ["7", "45", "1W", "3D", "10S", "hourly"])
def test_intervals_the_platform_lacks_are_unknown_markets(text: str) -> None:
    with pytest.raises(UnknownMarket) as err:
        map_interval(text)
    assert err.value.field == "timeframe"


@pytest.mark.parametrize(("body", "field"), [
    (b"", "body"), (b"{not json", "body"), (b'["buy"]', "body"), (b"hello there", "body"),
    (b'{"symbol": "BTCUSDT", "action": "hold"}', "action"), (b'{"symbol": "BTCUSDT"}', "action"),
    (b'{"action": "buy", "price": "{{close}}"}', "price"), (b'{"action": "buy", "time": "yesterday"}', "time"),
    (b'{"action": "buy", "parameters": [1]}', "parameters"), (b"\xff\xfe", "body"), (b"[" * 5000, "body"),
])
def test_malformed_payloads_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as err:
        normalize(body, JSON)
    assert err.value.field == field


def test_unrendered_placeholder_ticker_is_an_unknown_market() -> None:
    with pytest.raises(UnknownMarket):
        normalize(b'{"action": "buy", "ticker": "{{ticker}}"}', JSON)


def test_the_bar_dedupe_key_and_staleness() -> None:
    s = normalize(b'{"action": "buy", "time": "2024-01-15T10:00:00Z"}', JSON)
    first = accept(s, config_symbol="BTCUSDT", config_interval=Interval.H1, received_ms=BAR + 3_600_500)
    again = accept(s, config_symbol="BTCUSDT", config_interval=Interval.H1, received_ms=BAR + 3_603_000)
    assert first.dedupe_key == again.dedupe_key == f"{BAR}:buy" and not first.stale
    # Two bars of 1h after the bar's open is the limit without a max_lag.
    assert not accept(s, config_symbol="BTCUSDT", config_interval=Interval.H1, received_ms=BAR + 7_200_000).stale
    assert accept(s, config_symbol="BTCUSDT", config_interval=Interval.H1, received_ms=BAR + 7_200_001).stale
    lagged = normalize(b'{"action": "buy", "timenow": "2024-01-15T10:00:00Z", "max_lag": 30}', JSON)
    assert accept(lagged, config_symbol="BTCUSDT", config_interval=Interval.H1, received_ms=BAR + 31_000).stale
    assert not accept(lagged, config_symbol="BTCUSDT", config_interval=Interval.H1, received_ms=BAR + 29_000).stale


def test_a_signal_for_another_market_than_its_config_is_refused() -> None:
    s = normalize(b'{"action": "buy", "symbol": "ETHUSDT", "timeframe": "60"}', JSON)
    with pytest.raises(UnknownMarket) as err:
        accept(s, config_symbol="BTCUSDT", config_interval=Interval.H1, received_ms=BAR)
    assert err.value.field == "symbol"
    with pytest.raises(UnknownMarket) as err:
        accept(s, config_symbol="ETHUSDT", config_interval=Interval.H4, received_ms=BAR)
    assert err.value.field == "timeframe"


def test_forwarded_for_is_believed_only_from_configured_proxies() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8")]
    tv = ipaddress.ip_address("52.89.214.238")
    assert client_address("10.1.2.3", "1.2.3.4, 52.89.214.238, 10.9.9.9", proxies) == tv
    assert client_address("203.0.113.5", "52.89.214.238", proxies) == ipaddress.ip_address("203.0.113.5")
    assert client_address("::ffff:52.89.214.238", None, proxies) == tv
    allowed = [ipaddress.ip_network("52.89.214.238/32")]
    assert address_allowed(tv, allowed) and not address_allowed(ipaddress.ip_address("52.89.214.239"), allowed)
    assert address_allowed(None, []) and not address_allowed(None, allowed)


def test_ut_bot_config_fields() -> None:
    params = config_params("ut_bot", {"multiplier": 3.7, "atr_period": 10, "ema_period": 9})
    assert params == {"key_value": 3.7, "atr_period": 10, "heikin_ashi": False, "mode": "alerts", "ema_period": 9}
    assert config_params("ut_bot", {})["ema_period"] == 1
    with pytest.raises(ValueError, match="multiplier"):
        config_params("ut_bot", {"multiplier": 3.7, "key_value": 2})
    with pytest.raises(ValueError, match="ema_period"):
        config_params("ut_bot", {"ema_period": 0})
    with pytest.raises(ValueError, match="atr_period"):
        config_params("ut_bot", {"atr_period": 0})
    assert config_params("ema_cross", {"fast": 5, "slow": 30})["fast"] == 5
