"""USD prices for transactions that came without one, from the market-data library (`marketdata.library`).

A crypto asset's price is the close of the 1-minute candle holding the transaction's minute, on its USD-like market
(`{ASSET}USDT`, then `{ASSET}USDC`, `{ASSET}USD`) in the library's `binance` series. A stablecoin is 1 USD unless its
own market says otherwise (`{COIN}USD`, then `{COIN}USDT`, at that minute). Nothing found: the transaction stays
unpriced, and `require_price` turns that into a rejected row with its reason, never a zero.
Candles are floats in the library; a close enters the engine as the Decimal of its shortest text (`repr`), once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import numpy as np

from marketpulse.marketdata.library import CandleLibrary
from marketpulse.tax.core import PRICED_TYPES, Transaction
from marketpulse.tax.csv_formats import ParsedRow
from marketpulse.tax.layouts import STABLECOINS

MINUTE_MS = 60_000
EXCHANGE = "binance"


class Prices(Protocol):
    def lookup(self, asset: str, minutes: Sequence[int]) -> dict[int, Decimal]:
        """USD prices of `asset` at these minute starts (epoch ms), for the minutes that have one."""
        ...


def markets(asset: str) -> tuple[str, ...]:
    if asset in STABLECOINS:
        return (f"{asset}USD", f"{asset}USDT") if asset != "USDT" else ("USDTUSD",)
    return (f"{asset}USDT", f"{asset}USDC", f"{asset}USD")


class LibraryPrices:
    def __init__(self, root: Path, exchange: str = EXCHANGE) -> None:
        self.library = CandleLibrary(root)
        self.exchange = exchange

    def lookup(self, asset: str, minutes: Sequence[int]) -> dict[int, Decimal]:
        wanted = sorted(set(minutes))
        found: dict[int, Decimal] = {}
        for symbol in markets(asset):
            left = [m for m in wanted if m not in found]
            if not left:
                break
            try:
                frame = self.library.read(self.exchange, symbol, "1m", left[0], left[-1] + MINUTE_MS)
            except ValueError:  # a name the library can't hold (odd characters): no market
                continue
            if not len(frame):
                continue
            index = np.searchsorted(frame.time, np.asarray(left, dtype=np.int64))
            for minute, at in zip(left, index.tolist(), strict=True):
                if at < len(frame) and int(frame.time[at]) == minute:
                    found[minute] = Decimal(repr(float(frame.close[at])))
        if asset in STABLECOINS:
            for minute in wanted:
                found.setdefault(minute, Decimal(1))
        return found


def fill_prices(rows: list[ParsedRow], prices: Prices | None) -> list[ParsedRow]:
    """The rows with each missing price looked up (stablecoins at 1 USD without a market, even with no library).
    Only types whose USD value is the tax figure are priced: a transfer or deposit keeps the basis it carries."""
    missing: dict[str, list[int]] = defaultdict(list)
    for parsed in rows:
        if parsed.tx.price_usd is None and parsed.tx.type in PRICED_TYPES:
            missing[parsed.tx.asset].append(_minute(parsed.tx))
    if not missing:
        return rows
    table: dict[str, dict[int, Decimal]] = {}
    for asset, minutes in missing.items():
        if prices is not None:
            table[asset] = prices.lookup(asset, minutes)
        elif asset in STABLECOINS:
            table[asset] = dict.fromkeys(minutes, Decimal(1))
    out = []
    for parsed in rows:
        tx = parsed.tx
        if tx.price_usd is None and tx.type in PRICED_TYPES:
            price = table.get(tx.asset, {}).get(_minute(tx))
            if price is not None:
                parsed = ParsedRow(parsed.line, _priced(tx, price))
        out.append(parsed)
    return out


def _priced(tx: Transaction, price: Decimal) -> Transaction:
    return replace(tx, price_usd=price)


def _minute(tx: Transaction) -> int:
    return tx.timestamp_ms - tx.timestamp_ms % MINUTE_MS
