"""Normalized market-data models (pure: no I/O). Every source produces these; everything downstream reads them.

msgspec Structs: cheap to build in the hot path, `msgspec.structs.asdict` / `to_builtins` for the bus.
Times are epoch milliseconds, UTC. Volumes: `volume` in base units, `quote_volume` in USDT.
"""

from __future__ import annotations

import re

import msgspec

from marketpulse.marketdata.intervals import MS_BY_NAME, UnknownIntervalError
from marketpulse.times import EARLIEST_MS, LATEST_MS

_SYMBOL_JUNK = re.compile(r"[-_/:\s]")


def normalize_symbol(raw: str) -> str:
    """'btc-usdt', 'BTC_USDT', 'BTC/USDT:USDT' → 'BTCUSDT' (upper case, no separators, no ccxt settle suffix)."""
    base = raw.split(":", 1)[0]
    return _SYMBOL_JUNK.sub("", base).upper()


_EXCHANGE_SYMBOL = re.compile(r"[A-Z0-9]{2,30}")


def exchange_symbol(raw: str) -> str:
    """`normalize_symbol`, then the exchanges' character set: 2-30 ASCII letters and digits (BTCUSDT,
    1000PEPEUSDT). ValueError otherwise, so separators alone, emoji and markup never become stored symbols."""
    symbol = normalize_symbol(raw)
    if not _EXCHANGE_SYMBOL.fullmatch(symbol):
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise ValueError(f"{shown!r} is not a market symbol: without separators it must be 2-30 letters A-Z and "
                         "digits, like BTCUSDT")
    return symbol


def asset_of(symbol: str) -> str:
    """'BTCUSDT' → 'BTC'; '1000PEPEUSDT' → '1000PEPE' (the seed's `asset` field)."""
    for quote in ("USDT", "USDC", "BUSD", "USD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


class Candle(msgspec.Struct, frozen=True):
    symbol: str
    interval: str
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    closed: bool = True

    def __post_init__(self) -> None:
        # Runs on construction and on msgspec decoding alike, so a bus message, a file row or an API body with
        # an interval outside the one set is refused the same way everywhere.
        step = MS_BY_NAME.get(self.interval)
        if step is None:
            raise UnknownIntervalError(self.interval)
        if not EARLIEST_MS <= self.open_time < LATEST_MS:
            raise ValueError(f"open_time {self.open_time} is outside 2000-01-01 … 2100-01-01 UTC in epoch ms")
        if self.open_time % step:
            raise ValueError(f"open_time {self.open_time} is not on a {self.interval} boundary (UTC)")


class Ticker24h(msgspec.Struct, frozen=True):
    symbol: str
    time: int
    last_price: float
    open_price: float
    high: float
    low: float
    change_pct: float
    volume: float
    quote_volume: float


class MarkPrice(msgspec.Struct, frozen=True):
    symbol: str
    time: int
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_time: int


class OpenInterest(msgspec.Struct, frozen=True):
    symbol: str
    time: int
    contracts: float
    mark_price: float

    @property
    def usd(self) -> float:
        return self.contracts * self.mark_price


class MarketRow(msgspec.Struct):
    """One line of the dashboard table: ticker merged with mark price/funding and open interest."""

    symbol: str
    time: int
    price: float
    change_pct_24h: float
    quote_volume_24h: float
    funding_rate: float | None = None
    open_interest_usd: float | None = None
    price_precision: int | None = None


class Liquidation(msgspec.Struct, frozen=True):
    """A forced liquidation: `side` is the position closed (`long`: the exchange sold it, Binance's SELL; `short`:
    bought back, BUY), at `price` (the average fill), `quantity` in base units, `usd` its notional (price ×
    quantity), `time` the trade's epoch ms."""

    symbol: str
    side: str
    price: float
    quantity: float
    usd: float
    time: int

    @property
    def id(self) -> str:
        """Stable over redeliveries and replays of the same event (Binance gives liquidations no id)."""
        return f"{self.symbol}:{self.time}:{self.side}:{self.price!r}:{self.quantity!r}"[:160]


LIQUIDATION_SIDES = ("long", "short")
