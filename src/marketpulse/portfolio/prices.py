"""USD prices from the market data the platform stores: the close of `<ASSET>USDT`'s candle at (or just before) a
time, or the dashboard's per-minute snapshot price, whichever is nearer; else the candle library's 1-minute close at
that minute (the tax lane's `LibraryPrices`, for history older than the store keeps); a stablecoin is 1 USD unless
its own market (USDCUSDT…) says otherwise. A price older than `MAX_AGE_MS` before the time asked is no price (None): the
caller lists the asset as unpriced instead of valuing it at a stale or zero figure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.marketdata.tables import CandleRow, MarketSnapshotRow
from marketpulse.portfolio.core import is_stable

MAX_AGE_MS = 86_400_000
MINUTE_MS = 60_000


class Prices:
    """Prices with a per-instance cache keyed by (asset, minute): one sync or one view asks each at most once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], library: Any = None) -> None:
        self.sessions = sessions
        self.library = library  # tax.prices.LibraryPrices (lookup(asset, minutes)), or None
        self._cache: dict[tuple[str, int], Decimal | None] = {}

    async def prefetch(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Look up every (asset, time) once: the store first, then the library for what it lacks, an asset's
        minutes in one read."""
        missing: dict[str, set[int]] = {}
        for asset, ms in pairs:
            if await self.at(asset, ms) is None and self.library is not None:
                missing.setdefault(asset.upper(), set()).add(ms - ms % MINUTE_MS)
        for asset, minutes in missing.items():
            try:
                found = await asyncio.to_thread(self.library.lookup, asset, sorted(minutes))
            except Exception:  # a library that can't be read prices nothing; the store's answer stands
                continue
            for minute, price in found.items():
                self._cache[(asset, minute)] = price

    async def at(self, asset: str, ms: int) -> Decimal | None:
        asset = asset.upper()
        if asset == "USDT":
            return Decimal(1)
        key = (asset, ms - ms % MINUTE_MS)
        if key not in self._cache:
            found = await self._lookup(f"{asset}USDT", ms)
            self._cache[key] = Decimal(1) if found is None and is_stable(asset) else found
        return self._cache[key]

    def known(self, asset: str, ms: int) -> Decimal | None:
        """A price `at` has already looked up (for the pure mappers, after `at` was awaited for each pair)."""
        asset = asset.upper()
        if asset == "USDT":
            return Decimal(1)
        return self._cache.get((asset, ms - ms % MINUTE_MS))

    async def _lookup(self, symbol: str, ms: int) -> Decimal | None:
        async with self.sessions() as s:
            candle = (await s.execute(
                select(CandleRow.open_time, CandleRow.close)
                .where(CandleRow.symbol == symbol, CandleRow.open_time <= ms, CandleRow.open_time > ms - MAX_AGE_MS)
                .order_by(CandleRow.open_time.desc()).limit(1))).first()
            snap = (await s.execute(
                select(MarketSnapshotRow.time, MarketSnapshotRow.price)
                .where(MarketSnapshotRow.symbol == symbol, MarketSnapshotRow.time <= ms,
                       MarketSnapshotRow.time > ms - MAX_AGE_MS)
                .order_by(MarketSnapshotRow.time.desc()).limit(1))).first()
        best = max((r for r in (candle, snap) if r is not None), key=lambda r: r[0], default=None)
        return None if best is None else Decimal(repr(float(best[1])))
