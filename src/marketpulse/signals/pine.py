"""Pine Script v5 for a signal config (pure): the strategy with the config's parameters and an `alert()` whose
message is the JSON this platform's webhook reads, so a TradingView user pastes the script and the webhook URL.

Inside `alert()` TradingView renders no `{{placeholders}}`, so the message is built from Pine's own values:
`syminfo.tickerid` (`BINANCE:BTCUSDT.P`), `timeframe.period` (`60`, `1D`), `close` and `time` (the bar's open, epoch
ms). The webhook maps each of them (`core.map_symbol`, `core.map_interval`). Alerts fire once per bar close, so a
signal is the closed bar's, as the platform's own computed signals are.
"""

from __future__ import annotations

from typing import Any

MESSAGE_PARTS = ('{"symbol":"', "syminfo.tickerid", '","timeframe":"', "timeframe.period", '","action":"',
                 "ACTION", '","price":', "str.tostring(close)", ',"time":', "str.tostring(time)",
                 ',"strategy":"', "STRATEGY", '"}')


def alert_message(action: str, strategy: str) -> str:
    """The Pine expression building the alert's JSON for `action`."""
    out = []
    for i, part in enumerate(MESSAGE_PARTS):
        literal = i % 2 == 0
        if part == "ACTION":
            out.append(_quote(action))
        elif part == "STRATEGY":
            out.append(_quote(strategy))
        else:
            out.append(_quote(part) if literal else part)
    # Adjacent literals are joined so the expression reads as the JSON it builds.
    return " + ".join(out)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pine_script(*, config_id: str, strategy: str, symbol: str, timeframe: str, params: dict[str, Any],
                webhook_url: str) -> str:
    body = _UT_BOT if strategy == "ut_bot" else _GENERIC
    return body.format(
        config_id=config_id, symbol=symbol, timeframe=timeframe, webhook_url=webhook_url, strategy=strategy,
        key_value=float(params.get("key_value", 1.0)), atr_period=int(params.get("atr_period", 10)),
        ema_period=int(params.get("ema_period", 1)), heikin_ashi="true" if params.get("heikin_ashi") else "false",
        params=", ".join(f"{k}={v}" for k, v in sorted(params.items())),
        buy=alert_message("buy", strategy), sell=alert_message("sell", strategy),
    )


_UT_BOT = """//@version=5
// marketpulse signal config {config_id}: UT Bot Alerts on {symbol} {timeframe}
// Webhook URL (paste it into the alert's Notifications > Webhook URL): {webhook_url}
// Create one alert with the condition "Any alert() function call"; the message is built below.
indicator("UT Bot Alerts (marketpulse {config_id})", overlay=true)
keyValue = input.float({key_value}, "Key Value (multiplier, sensitivity)")
atrPeriod = input.int({atr_period}, "ATR Period")
emaPeriod = input.int({ema_period}, "EMA Period (1: the source itself)")
useHeikinAshi = input.bool({heikin_ashi}, "Signals from Heikin Ashi close")

src = useHeikinAshi ? (open + high + low + close) / 4 : close
nLoss = keyValue * ta.atr(atrPeriod)
var float stop = na
prevStop = nz(stop[1], 0)
stop := src > prevStop and src[1] > prevStop ? math.max(prevStop, src - nLoss) :
     src < prevStop and src[1] < prevStop ? math.min(prevStop, src + nLoss) :
     src > prevStop ? src - nLoss : src + nLoss
ema = ta.ema(src, emaPeriod)
buy = src > stop and ta.crossover(ema, stop)
sell = src < stop and ta.crossover(stop, ema)
plot(stop, "Trailing stop", color=color.gray)
plotshape(buy, "Buy", shape.labelup, location.belowbar, color.green, text="Buy")
plotshape(sell, "Sell", shape.labeldown, location.abovebar, color.red, text="Sell")

if buy
    alert({buy}, alert.freq_once_per_bar_close)
if sell
    alert({sell}, alert.freq_once_per_bar_close)
"""

_GENERIC = """//@version=5
// marketpulse signal config {config_id}: {strategy} on {symbol} {timeframe} ({params})
// Webhook URL (paste it into the alert's Notifications > Webhook URL): {webhook_url}
// Write the strategy's buy and sell conditions below; the alert messages are what the webhook reads.
indicator("{strategy} (marketpulse {config_id})", overlay=true)
buy = false  // the {strategy} entry condition
sell = false  // the {strategy} exit condition

if buy
    alert({buy}, alert.freq_once_per_bar_close)
if sell
    alert({sell}, alert.freq_once_per_bar_close)
"""
