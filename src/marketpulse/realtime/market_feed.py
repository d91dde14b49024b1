"""The live market table as the API serves it, and the wire form of its rows (pure: no I/O).

Wire rows are camelCase like the rest of the HTTP/Socket.IO surface:
    {"symbol", "time", "price", "changePct24h", "quoteVolume24h", "fundingRate", "openInterestUsd", "pricePrecision"}
A *patch* is a wire row in which absent fields mean "unchanged": a ticker from a source may not know the
open interest, and sending `null` for it would blank a value the client already shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from marketpulse.marketdata.models import MarketRow, MarkPrice, Ticker24h
from marketpulse.marketdata.table import MarketTable

WIRE_FIELDS: dict[str, str] = {
    "symbol": "symbol",
    "time": "time",
    "price": "price",
    "change_pct_24h": "changePct24h",
    "quote_volume_24h": "quoteVolume24h",
    "funding_rate": "fundingRate",
    "open_interest_usd": "openInterestUsd",
    "price_precision": "pricePrecision",
}


def row_to_wire(row: MarketRow) -> dict[str, Any]:
    return {wire: getattr(row, name) for name, wire in WIRE_FIELDS.items()}


def patch_of(row: MarketRow) -> dict[str, Any]:
    """The row as a patch: only the fields it knows."""
    return {wire: value for name, wire in WIRE_FIELDS.items() if (value := getattr(row, name)) is not None}


def decode_rows(items: Iterable[Any]) -> tuple[list[MarketRow], int]:
    """MarketRows from bus builtins; returns (rows, number rejected) so a bad row can't sink its batch."""
    rows, rejected = [], 0
    for item in items:
        try:
            rows.append(msgspec.convert(item, MarketRow))
        except (msgspec.ValidationError, TypeError):
            rejected += 1
    return rows, rejected


class MarketFeed:
    """MarketTable fed with whole MarketRows (what sources publish) and with open-interest updates."""

    def __init__(self, table: MarketTable | None = None) -> None:
        self.table = table or MarketTable()
        self.updated_at: int | None = None  # market time of the newest row

    def apply_rows(self, rows: Iterable[MarketRow]) -> None:
        rows = list(rows)
        # MarketTable merges tickers, mark prices and OI; a MarketRow carries just the fields it keeps, so the
        # ticker/mark fields the table never reads (high, low, volume, index price…) are filled with the price.
        self.table.apply_tickers(_ticker_of(r) for r in rows)
        self.table.apply_mark_prices(_mark_of(r) for r in rows if r.funding_rate is not None)
        oi = {r.symbol: r.open_interest_usd for r in rows if r.open_interest_usd is not None}
        if oi:
            self.table.apply_open_interest(oi)
        precisions = {r.symbol: r.price_precision for r in rows if r.price_precision is not None}
        if precisions:
            self.table.set_precisions(precisions)
        if rows:
            self.updated_at = max(self.updated_at or 0, max(r.time for r in rows))

    def apply_open_interest(self, usd_by_symbol: Mapping[str, float]) -> None:
        self.table.apply_open_interest(usd_by_symbol)

    def has(self, symbol: str) -> bool:
        return self.table.get(symbol) is not None

    def get(self, symbol: str) -> dict[str, Any] | None:
        row = self.table.get(symbol)
        return None if row is None else row_to_wire(row)

    def snapshot(self) -> list[dict[str, Any]]:
        return [row_to_wire(r) for r in self.table.rows()]


class PatchBuffer:
    """Patches waiting for the next debounced emit, merged per symbol so each symbol goes out once."""

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, Any]] = {}

    def add(self, patches: Iterable[Mapping[str, Any]]) -> None:
        for patch in patches:
            self._pending.setdefault(patch["symbol"], {}).update(patch)

    def __len__(self) -> int:
        return len(self._pending)

    def take(self) -> list[dict[str, Any]]:
        out, self._pending = list(self._pending.values()), {}
        return out


def _ticker_of(row: MarketRow) -> Ticker24h:
    return Ticker24h(
        symbol=row.symbol, time=row.time, last_price=row.price, open_price=row.price, high=row.price, low=row.price,
        change_pct=row.change_pct_24h, volume=0.0, quote_volume=row.quote_volume_24h,
    )


def _mark_of(row: MarketRow) -> MarkPrice:
    assert row.funding_rate is not None
    return MarkPrice(
        symbol=row.symbol, time=row.time, mark_price=row.price, index_price=row.price,
        funding_rate=row.funding_rate, next_funding_time=0,
    )
