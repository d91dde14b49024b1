"""Strategy signals, the pure core: every payload format users paste into TradingView normalized into one
`Signal`, tickers and intervals mapped to the platform's, the dedupe key, the stale rule, and config parameters.

Formats (`normalize(body, content_type)`):
- the seed's JSON: `{"symbol", "timeframe", "action", "price", "timestamp", "strategy", "parameters"}`;
- TradingView placeholders rendered into JSON: `{{ticker}}` (`ticker`), `{{exchange}}`, `{{interval}}`,
  `{{close}}`, `{{time}}` (bar open), `{{timenow}}` (fire time), `{{strategy.order.action}}`,
  `{{strategy.order.contracts}}`, `{{strategy.market_position}}`, `{{strategy.prev_market_position}}`,
  `{{plot_0}}`, under the keys people give them (`ticker`/`symbol`, `interval`/`timeframe`, `close`/`price`, …);
- `KEY=VALUE` lines as OctoBot reads them (`SYMBOL=BTCUSDT`, `SIGNAL=BUY`, `PRICE=…`), sent as text/plain;
- 3Commas-style JSON: `secret`, `bot_uuid`, `action` (`enter_long`, `exit_long`, `enter_short`, `exit_short`),
  `max_lag` (seconds), `trigger_price`, `tv_exchange`, `tv_instrument`, `timestamp`.
Whatever the format, a signal is one of two actions, `buy` or `sell` (3Commas' enter_long / exit_short are buys).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from marketpulse.marketdata.intervals import Interval
from marketpulse.times import TimeParseError, parse_time_ms

ACTIONS = ("buy", "sell")
SOURCES = ("tradingview", "computed")
MAX_BODY_BYTES = 16_384  # TradingView's alert messages are far smaller; anything bigger is not an alert
STALE_BARS = 2  # without a max_lag, a signal older than two bars of its timeframe is stale

_ACTION_WORDS = {
    "buy": "buy", "long": "buy", "enter_long": "buy", "exit_short": "buy", "close_short": "buy", "cover": "buy",
    "sell": "sell", "short": "sell", "enter_short": "sell", "exit_long": "sell", "close_long": "sell",
}
# TradingView's {{interval}}: minutes as a bare number, D/W/M with an optional count, S for seconds.
_TV_INTERVAL = re.compile(r"^(?:(\d+)|(\d*)([DWMS]))$")
_TICKER = re.compile(r"^[A-Z0-9]{2,30}$")


class PayloadError(ValueError):
    """The payload can't be read as a signal (400): `field` names what is wrong, `reason` says how."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


class UnknownMarket(ValueError):
    """A symbol or timeframe the platform does not trade (422)."""

    def __init__(self, field_name: str, value: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class Signal:
    """One signal, whatever format it came in. Times are epoch ms; `bar_time` is the bar's open time."""

    action: str
    symbol: str | None  # None: the payload didn't say (the config's symbol applies)
    interval: Interval | None
    price: float | None
    bar_time: int | None  # {{time}}, the seed's timestamp
    fired_at: int | None  # {{timenow}}
    max_lag_s: float | None
    secret: str | None
    extra: dict[str, Any] = field(default_factory=dict)  # strategy, parameters, contracts, positions, plot_0, …

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "symbol": self.symbol, "timeframe": self.interval.value if self.interval
                else None, "price": self.price, "bar_time": self.bar_time, "fired_at": self.fired_at,
                "max_lag_s": self.max_lag_s, **self.extra}


# --- tickers and intervals ---------------------------------------------------------------------------------------


def map_symbol(text: str) -> str:
    """`BINANCE:BTCUSDT.P`, `BTCUSDT.P`, `BTCUSDTPERP`, `btc/usdt`, `BTC-USDT` → `BTCUSDT`; UnknownMarket otherwise."""
    raw = str(text).strip()
    ticker = raw.split(":")[-1].upper()
    for suffix in (".P", ".PERP", "PERP", "_PERP"):
        if ticker.endswith(suffix) and len(ticker) > len(suffix) + 2:
            ticker = ticker[: -len(suffix)]
            break
    ticker = re.sub(r"[/\-_ ]", "", ticker)
    if not _TICKER.match(ticker):
        raise UnknownMarket("symbol", raw, "not a ticker like BTCUSDT or BINANCE:BTCUSDT.P")
    return ticker


def map_interval(text: Any) -> Interval:
    """TradingView's `{{interval}}` (`1`, `60`, `240`, `D`, `1D`) or the platform's (`1h`) → an Interval."""
    raw = str(text).strip()
    try:
        return Interval.parse(raw)
    except ValueError:
        pass
    found = _TV_INTERVAL.match(raw.upper())
    names = ", ".join(i.value for i in Interval)
    if found is None:
        raise UnknownMarket("timeframe", raw, f"not an interval; use TradingView's minutes (60, 240), 1D, or {names}")
    minutes, count, unit = found.groups()
    if minutes is not None:
        text_interval = f"{int(minutes) // 60}h" if int(minutes) % 60 == 0 and int(minutes) >= 60 else f"{minutes}m"
        if int(minutes) == 1440:
            text_interval = "1d"
    elif unit == "D":
        text_interval = f"{count or 1}d"
    else:
        text_interval = "?"
    try:
        return Interval.parse(text_interval)
    except ValueError:
        raise UnknownMarket("timeframe", raw, f"the platform has no such interval; it has {names}") from None


# --- payloads ----------------------------------------------------------------------------------------------------


def parse_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The payload's fields: a JSON object (TradingView sends application/json when the message is valid JSON,
    but a JSON message is read whatever the header says), else `KEY=VALUE` lines."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError("body", f"larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("body", "not UTF-8 text") from None
    if not text:
        raise PayloadError("body", "empty")
    kind = (content_type or "").split(";")[0].strip().lower()
    if text[0] in "{[" or kind == "application/json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PayloadError("body", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                                       "unrendered placeholders need quotes") from None
        except RecursionError:
            raise PayloadError("body", "JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise PayloadError("body", "a JSON object is expected")
        return data
    return _key_values(text)


def _key_values(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, line in enumerate(re.split(r"[\r\n;]+", text), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise PayloadError("body", f"line {number} is not KEY=VALUE (nor is the body JSON)")
        out[key.strip().lower()] = value.strip()
    return out


def normalize(body: bytes, content_type: str | None) -> Signal:
    """A payload in any supported format → one Signal (PayloadError: malformed; UnknownMarket: unknown market)."""
    return from_fields(parse_body(body, content_type))


def from_fields(data: dict[str, Any]) -> Signal:
    fields = {str(k).strip().lower().replace("-", "_"): v for k, v in data.items()}
    params = fields.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise PayloadError("parameters", "an object of strategy parameters is expected")
    symbol_text = _first(fields, "symbol", "ticker", "tv_instrument", "pair")
    interval_text = _first(fields, "timeframe", "interval", "tf")
    extra: dict[str, Any] = {k: fields[k] for k in ("strategy", "exchange", "bot_uuid", "contracts", "market_position",
                                    "prev_market_position", "plot_0", "comment") if k in fields}
    if params:
        extra["parameters"] = params
    return Signal(
        action=_action(fields),
        symbol=map_symbol(symbol_text) if symbol_text is not None else None,
        interval=map_interval(interval_text) if interval_text is not None else None,
        price=_number(fields, "price", _first_key(fields, "price", "close", "trigger_price", "plot_0")),
        bar_time=_time(fields, _first_key(fields, "timestamp", "time", "bar_time")),
        fired_at=_time(fields, _first_key(fields, "timenow", "fired_at")),
        max_lag_s=_number(fields, "max_lag", "max_lag" if "max_lag" in fields else None),
        secret=str(fields["secret"]) if fields.get("secret") not in (None, "") else None,
        extra=extra,
    )


def _first_key(fields: dict[str, Any], *keys: str) -> str | None:
    return next((k for k in keys if fields.get(k) not in (None, "")), None)


def _first(fields: dict[str, Any], *keys: str) -> Any:
    key = _first_key(fields, *keys)
    return fields[key] if key else None


def _action(fields: dict[str, Any]) -> str:
    for key in ("action", "signal", "side", "order_action", "strategy.order.action"):
        if (value := fields.get(key)) not in (None, ""):
            word = _ACTION_WORDS.get(str(value).strip().lower())
            if word is None:
                raise PayloadError(key, f"{str(value)[:40]!r} is not an action: use buy or sell (long, short, "
                                        "enter_long, exit_long, enter_short, exit_short)")
            return word
    position = str(fields.get("market_position") or "").strip().lower()
    previous = str(fields.get("prev_market_position") or "").strip().lower()
    if position in ("long", "short"):
        return "buy" if position == "long" else "sell"
    if position == "flat" and previous in ("long", "short"):
        return "sell" if previous == "long" else "buy"  # closing a long sells, closing a short buys
    raise PayloadError("action", "missing: give action (buy or sell) or market_position")


def _number(fields: dict[str, Any], name: str, key: str | None) -> float | None:
    if key is None:
        return None
    try:
        value = float(fields[key])
    except (TypeError, ValueError):
        raise PayloadError(key, f"{str(fields[key])[:40]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise PayloadError(key, f"{name} must be a finite number >= 0")
    return value


def _time(fields: dict[str, Any], key: str | None) -> int | None:
    if key is None:
        return None
    value = fields[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 946_684_800 <= value < 4_102_444_800:
        value = int(value * 1000)  # epoch seconds (a bot's timestamp), not ms
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) == 10:
        value = int(value.strip()) * 1000
    try:
        return parse_time_ms(value)
    except (TimeParseError, ValueError) as exc:
        raise PayloadError(key, str(exc)[:200]) from None


# --- a config's view of a signal -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A signal for one config: the bar it belongs to, its dedupe key, and whether it is stale."""

    action: str
    symbol: str
    interval: Interval
    price: float | None
    bar_time: int
    dedupe_key: str
    stale: bool


def accept(signal: Signal, *, config_symbol: str, config_interval: Interval, received_ms: int) -> Accepted:
    """Check the signal against its config (UnknownMarket: another symbol or timeframe) and key it.

    The bar is the signal's `{{time}}` (else `{{timenow}}`, else the receipt) floored to the config's interval, so
    TradingView repeating a request, or a bot firing twice within a bar, gives the same key."""
    if signal.symbol is not None and signal.symbol != config_symbol:
        raise UnknownMarket("symbol", signal.symbol, f"this webhook is for {config_symbol}")
    if signal.interval is not None and signal.interval != config_interval:
        raise UnknownMarket("timeframe", signal.interval.value, f"this webhook is for {config_interval.value}")
    when = next(t for t in (signal.bar_time, signal.fired_at, received_ms) if t is not None)
    bar_time = config_interval.floor(when)
    return Accepted(action=signal.action, symbol=config_symbol, interval=config_interval, price=signal.price,
                    bar_time=bar_time, dedupe_key=dedupe_key(bar_time, signal.action),
                    stale=is_stale(signal, config_interval, received_ms))


def dedupe_key(bar_time: int, action: str) -> str:
    return f"{bar_time}:{action}"


def is_stale(signal: Signal, interval: Interval, received_ms: int) -> bool:
    """Older than its `max_lag` (seconds), else than two bars: measured from when it fired (`{{timenow}}`), else
    from its bar's open (a bar-close alert is then one bar old, well inside two)."""
    sent = signal.fired_at if signal.fired_at is not None else signal.bar_time
    if sent is None:
        return False
    allowed_ms = signal.max_lag_s * 1000 if signal.max_lag_s is not None else STALE_BARS * interval.ms
    return received_ms - sent > allowed_ms


# --- configs -----------------------------------------------------------------------------------------------------

# The seed's UT Bot fields beside the indicator's own: `multiplier` is the seed's name for UT Bot's "Key Value"
# (the ATR multiple, 3.7 in its example), so the two are one parameter; `ema_period` is the length of the EMA of
# the source that must cross the trailing stop (the original script's `ta.ema(src, 1)`: 1, the default, is the
# source itself, i.e. the indicator as published).
UT_BOT_EXTRAS = ("ema_period", "multiplier")
EMA_PERIOD_MAX = 500


def config_params(strategy: str, given: dict[str, Any]) -> dict[str, Any]:
    """The strategy's parameters for a config (defaults filled, each validated); ValueError naming the field."""
    from marketpulse.strategies import get_strategy

    cls = get_strategy(strategy)
    values = {k: v for k, v in given.items() if v is not None}
    extras: dict[str, Any] = {}
    if strategy == "ut_bot":
        multiplier = values.pop("multiplier", None)
        if multiplier is not None:
            if "key_value" in values and float(values["key_value"]) != float(multiplier):
                raise ValueError("multiplier: is the seed's name for key_value; give one, or the same value")
            values["key_value"] = multiplier
        ema = values.pop("ema_period", 1)
        if isinstance(ema, bool) or not isinstance(ema, int) or not 1 <= ema <= EMA_PERIOD_MAX:
            raise ValueError(f"ema_period: an integer from 1 to {EMA_PERIOD_MAX} (1: the source itself)")
        extras["ema_period"] = ema
        values.setdefault("mode", "alerts")
    params = cls.resolve_params(values)
    return params | extras


def params_key(params: dict[str, Any]) -> str:
    """A config's parameters as one comparable text (configs are unique per symbol, timeframe and parameters)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


# --- who sent it -------------------------------------------------------------------------------------------------

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_address(text: str | None) -> Address | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None  # not an IP (a test client's name, a Unix socket): in no allowlist
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:52.89.214.238 from a dual-stack socket
    return mapped or address


def _within(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in net for net in networks if net.version == address.version)


def client_address(peer: str | None, forwarded_for: str | None, proxies: Sequence[Network]) -> Address | None:
    """The sender: the peer, unless the peer is one of `proxies`; then the right-most `X-Forwarded-For` entry that
    is not a proxy (entries left of it were written by the client and prove nothing)."""
    address = ip_address(peer)
    if address is None or not forwarded_for or not _within(address, proxies):
        return address
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        address = ip_address(hop)
        if address is None or not _within(address, proxies):
            return address
    return address


def address_allowed(address: Address | None, allowed: Sequence[Network]) -> bool:
    """Empty allowlist: anyone; else the address must be inside it."""
    return not allowed or (address is not None and _within(address, allowed))
