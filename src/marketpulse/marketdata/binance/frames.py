"""Binance USD-M wire formats → normalized models (pure: no I/O).

WebSocket: combined-stream frames `{"stream": name, "data": payload}` from the `/market` path: `!ticker@arr`,
`!markPrice@arr@1s` and `!forceOrder@arr` (one liquidation per frame, `{"e": "forceOrder", "E", "o": {...}}`;
a list of them is taken too).
REST: `/fapi/v1/exchangeInfo`, `/fapi/v1/klines`, `/fapi/v1/openInterest`, `/fapi/v1/premiumIndex`.
Binance sends numbers as strings; msgspec's lax mode (`strict=False`) turns them into floats while decoding,
so the hot path never calls `float()` itself. Unknown fields are ignored (msgspec's default).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import msgspec

from marketpulse.marketdata.intervals import MINUTE_MS
from marketpulse.marketdata.models import Candle, Liquidation, MarkPrice, OpenInterest, Ticker24h
from marketpulse.wire import camel

TICKER_STREAM = "!ticker@arr"
MARK_PRICE_STREAM = "!markPrice@arr@1s"
LIQUIDATION_STREAM = "!forceOrder@arr"
MARKET_STREAMS = (TICKER_STREAM, MARK_PRICE_STREAM, LIQUIDATION_STREAM)


# --- WebSocket payloads -------------------------------------------------------------------------------------


class TickerEvent(msgspec.Struct, tag_field="e", tag="24hrTicker", gc=False):
    """One element of `!ticker@arr` (the 24h rolling-window ticker)."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    price_change: float = msgspec.field(name="p")
    price_change_pct: float = msgspec.field(name="P")
    weighted_avg_price: float = msgspec.field(name="w")
    last_price: float = msgspec.field(name="c")
    last_qty: float = msgspec.field(name="Q")
    open_price: float = msgspec.field(name="o")
    high: float = msgspec.field(name="h")
    low: float = msgspec.field(name="l")
    volume: float = msgspec.field(name="v")  # base asset
    quote_volume: float = msgspec.field(name="q")  # USDT
    open_time: int = msgspec.field(name="O")
    close_time: int = msgspec.field(name="C")
    first_trade_id: int = msgspec.field(name="F")
    last_trade_id: int = msgspec.field(name="L")
    trade_count: int = msgspec.field(name="n")


class MarkPriceEvent(msgspec.Struct, tag_field="e", tag="markPriceUpdate", gc=False):
    """One element of `!markPrice@arr@1s`."""

    event_time: int = msgspec.field(name="E")
    symbol: str = msgspec.field(name="s")
    mark_price: float = msgspec.field(name="p")
    index_price: float = msgspec.field(name="i")
    # Strings: delivery contracts send "" here, and one of them must not reject the whole frame.
    settle_price: str = msgspec.field(name="P", default="")
    funding_rate: str = msgspec.field(name="r", default="")
    next_funding_time: int = msgspec.field(name="T", default=0)


class _ForceOrder(msgspec.Struct, gc=False):
    """The order inside a `forceOrder` event (Binance's field names; numbers arrive as strings)."""

    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")  # SELL liquidates a long, BUY a short
    quantity: float = msgspec.field(name="q")  # original quantity
    price: float = msgspec.field(name="p")  # the order's (bankruptcy) price
    average_price: float = msgspec.field(name="ap", default=0.0)
    status: str = msgspec.field(name="X", default="FILLED")
    filled: float = msgspec.field(name="z", default=0.0)  # accumulated filled quantity
    trade_time: int = msgspec.field(name="T", default=0)


class ForceOrderEvent(msgspec.Struct, tag_field="e", tag="forceOrder", gc=False):
    """One element of `!forceOrder@arr`: Binance pushes at most one per symbol per second, the latest."""

    event_time: int = msgspec.field(name="E")
    order: _ForceOrder = msgspec.field(name="o")


class _Envelope(msgspec.Struct):
    stream: str
    data: msgspec.Raw  # decoded in a second step, by the type its stream name implies


@dataclass(frozen=True, slots=True)
class TickerBatch:
    tickers: list[Ticker24h]


@dataclass(frozen=True, slots=True)
class MarkPriceBatch:
    marks: list[MarkPrice]


@dataclass(frozen=True, slots=True)
class LiquidationBatch:
    liquidations: list[Liquidation]


class FrameRejected(ValueError):
    """A frame we cannot use. `reason` is the metric label: invalid_json, invalid_schema, unknown_stream."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _TickerFrame(msgspec.Struct):
    stream: str
    data: list[TickerEvent]


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_ticker_decoder = msgspec.json.Decoder(list[TickerEvent], strict=False)
_mark_decoder = msgspec.json.Decoder(list[MarkPriceEvent], strict=False)
_force_order_decoder = msgspec.json.Decoder(ForceOrderEvent | list[ForceOrderEvent], strict=False)
_ticker_frame_decoder = msgspec.json.Decoder(_TickerFrame, strict=False)
# Binance writes "stream" first; for the big ticker frame that lets us decode in one pass instead of two (~30%).
_TICKER_FRAME_PREFIX = b'{"stream":"' + TICKER_STREAM.encode() + b'",'


def decode_frame(raw: bytes | str) -> TickerBatch | MarkPriceBatch | LiquidationBatch:
    """Decode one combined-stream frame; raises FrameRejected with the reason it is unusable."""
    try:
        if isinstance(raw, bytes) and raw.startswith(_TICKER_FRAME_PREFIX):
            return TickerBatch([ticker_from_event(e) for e in _ticker_frame_decoder.decode(raw).data])
        envelope = _envelope_decoder.decode(raw)
        if envelope.stream == TICKER_STREAM:
            return TickerBatch([ticker_from_event(e) for e in _ticker_decoder.decode(envelope.data)])
        if envelope.stream.startswith("!markPrice@arr"):
            return MarkPriceBatch([mark_from_event(e) for e in _mark_decoder.decode(envelope.data)])
        if envelope.stream == LIQUIDATION_STREAM:
            decoded = _force_order_decoder.decode(envelope.data)
            events = decoded if isinstance(decoded, list) else [decoded]
            return LiquidationBatch([liq for e in events if (liq := liquidation_from_event(e)) is not None])
    except msgspec.ValidationError as exc:
        raise FrameRejected("invalid_schema", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise FrameRejected("invalid_json", str(exc)) from exc
    raise FrameRejected("unknown_stream", envelope.stream)


def ticker_from_event(e: TickerEvent) -> Ticker24h:
    # Positional (symbol, time, last_price, open_price, high, low, change_pct, volume, quote_volume): it runs
    # 600 times a second and is measurably cheaper than keywords.
    return Ticker24h(e.symbol, e.event_time, e.last_price, e.open_price, e.high, e.low, e.price_change_pct,
                     e.volume, e.quote_volume)


def mark_from_event(e: MarkPriceEvent) -> MarkPrice:
    return MarkPrice(
        symbol=e.symbol, time=e.event_time, mark_price=e.mark_price, index_price=e.index_price,
        funding_rate=float(e.funding_rate) if e.funding_rate else 0.0, next_funding_time=e.next_funding_time,
    )


def liquidation_from_event(e: ForceOrderEvent) -> Liquidation | None:
    """Normalized: the position side, the average fill price (the order price before any fill), the filled
    quantity (the order's before any fill), their USD notional. None for a side or size that makes no sense."""
    o = e.order
    side = {"SELL": "long", "BUY": "short"}.get(o.side)
    price = o.average_price if o.average_price > 0 else o.price
    quantity = o.filled if o.filled > 0 else o.quantity
    if side is None or not price > 0 or not quantity > 0 or price == float("inf") or quantity == float("inf"):
        return None
    return Liquidation(o.symbol, side, price, quantity, round(price * quantity, 2), o.trade_time or e.event_time)


# --- REST payloads ------------------------------------------------------------------------------------------


class _SymbolFilter(msgspec.Struct, rename=camel):
    filter_type: str
    tick_size: str | None = None


class _SymbolInfo(msgspec.Struct, rename=camel):
    symbol: str
    status: str
    contract_type: str = ""
    quote_asset: str = ""
    filters: list[_SymbolFilter] = []


class _ExchangeInfo(msgspec.Struct):
    symbols: list[_SymbolInfo]


class KlineRow(msgspec.Struct, array_like=True, gc=False):
    """One `/fapi/v1/klines` row; trailing columns (trade count, taker volumes, "ignore") are dropped."""

    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_time: int
    quote_volume: float


class _OpenInterest(msgspec.Struct, rename=camel):
    symbol: str
    open_interest: float
    time: int


class _PremiumIndex(msgspec.Struct, rename=camel):
    symbol: str
    mark_price: float
    index_price: float = 0.0
    last_funding_rate: str = ""
    next_funding_time: int = 0
    time: int = 0


@dataclass(frozen=True, slots=True)
class ActiveSymbols:
    """The USDT-margined perpetuals that trade now, with each one's price precision (decimals of its tick)."""

    precisions: dict[str, int]

    @property
    def symbols(self) -> list[str]:
        return list(self.precisions)


def decimals_of(tick_size: str) -> int:
    """'0.10' → 1, '0.0001000' → 4, '1' → 0, '10' → 0."""
    try:
        exponent = Decimal(tick_size).normalize().as_tuple().exponent
    except InvalidOperation as exc:
        raise ValueError(f"tickSize {tick_size!r} is not a number") from exc
    return max(0, -exponent) if isinstance(exponent, int) else 0


def parse_exchange_info(raw: bytes) -> ActiveSymbols:
    info = msgspec.json.decode(raw, type=_ExchangeInfo)
    precisions: dict[str, int] = {}
    for s in info.symbols:
        if s.contract_type != "PERPETUAL" or s.quote_asset != "USDT" or s.status != "TRADING":
            continue
        ticks = [f.tick_size for f in s.filters if f.filter_type == "PRICE_FILTER" and f.tick_size]
        precisions[s.symbol] = decimals_of(ticks[0]) if ticks else 8
    return ActiveSymbols(precisions)


_klines_decoder = msgspec.json.Decoder(list[KlineRow], strict=False)


def parse_klines(raw: bytes, symbol: str, interval: str = "1m") -> list[Candle]:
    return [
        Candle(symbol=symbol, interval=interval, open_time=k.open_time, open=k.open, high=k.high, low=k.low,
               close=k.close, volume=k.volume, quote_volume=k.quote_volume)
        for k in _klines_decoder.decode(raw)
    ]


def closed_candles(
    candles: Iterable[Candle], now_ms: int, after_open_time: int, interval_ms: int = MINUTE_MS
) -> list[Candle]:
    """Candles that have closed by `now_ms` and opened after `after_open_time` (those not yet published)."""
    return [c for c in candles if c.open_time > after_open_time and c.open_time + interval_ms <= now_ms]


def parse_open_interest(raw: bytes, mark_price: float) -> OpenInterest:
    oi = msgspec.json.decode(raw, type=_OpenInterest, strict=False)
    return OpenInterest(symbol=oi.symbol, time=oi.time, contracts=oi.open_interest, mark_price=mark_price)


def parse_premium_index(raw: bytes) -> dict[str, float]:
    """Mark price by symbol from `/fapi/v1/premiumIndex` without a symbol (a list of every contract)."""
    return {p.symbol: p.mark_price for p in msgspec.json.decode(raw, type=list[_PremiumIndex], strict=False)}
