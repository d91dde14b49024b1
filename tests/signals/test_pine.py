"""The generated Pine v5 script carries the config's parameters, and its alert() messages, rendered the way
TradingView renders Pine values, are read by the webhook parser as the config's own signal."""

from __future__ import annotations

import json
import re

import pytest

from marketpulse.marketdata.intervals import Interval
from marketpulse.signals.core import accept, config_params, normalize
from marketpulse.signals.pine import pine_script

URL = "https://signals.example.com/webhook/tradingview/tok"
PARAMS = config_params("ut_bot", {"multiplier": 3.7, "atr_period": 14, "ema_period": 9, "heikin_ashi": True})
# What Pine evaluates each value to on a BINANCE perpetual's 4h chart for the bar opening 2024-01-15 08:00 UTC.
PINE_VALUES = {"syminfo.tickerid": "BINANCE:BTCUSDT.P", "timeframe.period": "240",
               "str.tostring(close)": "42917.3", "str.tostring(time)": "1705305600000"}


def render(expression: str) -> str:
    """Evaluate a Pine string concatenation of quoted literals and the known values."""
    out = []
    for part in (p.strip() for p in expression.split(" + ")):
        if part.startswith("'"):
            out.append(part[1:-1].replace("\\'", "'").replace("\\\\", "\\"))
        else:
            out.append(PINE_VALUES[part])
    return "".join(out)


def script() -> str:
    return pine_script(config_id="c-1", strategy="ut_bot", symbol="BTCUSDT", timeframe="4h", params=PARAMS,
                       webhook_url=URL)


def test_the_script_carries_the_configs_parameters_and_url() -> None:
    text = script()
    assert text.startswith("//@version=5\n")
    assert URL in text
    assert 'input.float(3.7, "Key Value' in text
    assert 'input.int(14, "ATR Period")' in text
    assert 'input.int(9, "EMA Period' in text
    assert 'input.bool(true, "Signals from Heikin Ashi' in text
    assert "alert.freq_once_per_bar_close" in text


@pytest.mark.parametrize("action", ["buy", "sell"])
def test_each_alert_message_round_trips_through_the_webhook_parser(action: str) -> None:
    calls = re.findall(r"alert\((.+), alert\.freq_once_per_bar_close\)", script())
    assert len(calls) == 2
    rendered = [render(c) for c in calls]
    message = next(m for m in rendered if json.loads(m)["action"] == action)
    signal = normalize(message.encode(), "application/json")
    accepted = accept(signal, config_symbol="BTCUSDT", config_interval=Interval.H4, received_ms=1_705_320_001_000)
    assert (accepted.action, accepted.symbol, accepted.interval, accepted.price, accepted.bar_time) == (
        action, "BTCUSDT", Interval.H4, 42917.3, 1_705_305_600_000)
    assert not accepted.stale and signal.extra["strategy"] == "ut_bot"
