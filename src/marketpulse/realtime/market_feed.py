"""The live market table as the API serves it, and the wire form of its rows (pure: no I/O).

Wire rows are camelCase like the rest of the HTTP/Socket.IO surface:
    {"symbol", "time", "price", "changePct24h", "quoteVolume24h", "fundingRate", "openInterestUsd", "pricePrecision"}
A *patch* is a wire row in which absent fields mean "unchanged": a ticker from a source may not know the
open interest, and sending `null` for it would blank a value the client already shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from marketpulse.marketdata.models import MarketRow
from marketpulse.marketdata.table import MarketTable
from marketpulse.wire import camel

WIRE_FIELDS: dict[str, str] = {name: camel(name) for name in MarketRow.__struct_fields__}  # the one camel rule


def row_to_wire(row: MarketRow) -> dict[str, Any]:
    return {wire: getattr(row, name) for name, wire in WIRE_FIELDS.items()}


def patch_of(row: MarketRow) -> dict[str, Any]:
    """The row as a patch: only the fields it knows."""
    return {wire: value for name, wire in WIRE_FIELDS.items() if (value := getattr(row, name)) is not None}


class MarketFeed:
    """MarketTable fed with whole MarketRows (what sources publish) and with open-interest updates."""

    def __init__(self, table: MarketTable | None = None) -> None:
        self.table = table or MarketTable()
        self.updated_at: int | None = None  # market time of the newest row
        # Bumped by every change: what was encoded at one version (the HTTP reads' per-view bytes) stays valid
        # until the next; only a change makes a view re-encode (see marketdata.views.EncodedViews).
        self.version = 0

    def apply_rows(self, rows: Iterable[MarketRow]) -> None:
        changed = self.table.apply_rows(rows)
        if changed:
            self.version += 1
            self.updated_at = max(self.updated_at or 0, max(r.time for r in changed))

    def apply_open_interest(self, usd_by_symbol: Mapping[str, float]) -> None:
        self.table.apply_open_interest(usd_by_symbol)
        if usd_by_symbol:
            self.version += 1

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
