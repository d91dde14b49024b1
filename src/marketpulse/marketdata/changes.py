"""The table's change columns, from the store: price change over 1h and 4h (against the 1-minute candle that closed
then) and open-interest change over 1h, 4h and 24h (against the 5-minute snapshot then), and the next funding time.

They are read when `/api/v1/market/data` is asked (a few indexed point lookups, not a scan): the live table's rows
carry the 24h ticker, and a change over an hour needs the price an hour ago, which only the store keeps.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.marketdata.intervals import HOUR_MS, MINUTE_MS
from marketpulse.marketdata.tables import CandleRow, OpenInterestHistoryRow

Sessions = async_sessionmaker[AsyncSession]

PRICE_WINDOWS = {"1h": HOUR_MS, "4h": 4 * HOUR_MS}
OPEN_INTEREST_WINDOWS = {"1h": HOUR_MS, "4h": 4 * HOUR_MS, "24h": 24 * HOUR_MS}
SNAPSHOT_MS = 5 * MINUTE_MS
FUNDING_EVERY_MS = 8 * HOUR_MS  # Binance's USDT perpetuals settle at 00:00, 08:00 and 16:00 UTC


def next_funding_ms(now_ms: int) -> int:
    return (now_ms // FUNDING_EVERY_MS + 1) * FUNDING_EVERY_MS


def pct_change(now: float | None, then: float | None) -> float | None:
    if now is None or then is None or then <= 0:
        return None
    return round((now - then) / then * 100, 3)


async def reference_values(sessions: Sessions, now_ms: int) -> dict[str, dict[str, float]]:
    """Per symbol: `price1h`, `price4h` (the close of the minute that ended then) and `oi1h`, `oi4h`, `oi24h` (the
    snapshot of the 5 minutes then, else the one before)."""
    out: dict[str, dict[str, float]] = {}
    async with sessions() as session:
        for name, ms in PRICE_WINDOWS.items():
            minute = (now_ms - ms) // MINUTE_MS * MINUTE_MS - MINUTE_MS
            query = select(CandleRow.symbol, CandleRow.close).where(CandleRow.interval == "1m",
                                                                    CandleRow.open_time == minute)
            for symbol, close in (await session.execute(query)).all():
                out.setdefault(symbol, {})[f"price{name}"] = close
        for name, ms in OPEN_INTEREST_WINDOWS.items():
            bucket = (now_ms - ms) // SNAPSHOT_MS * SNAPSHOT_MS
            query = (select(OpenInterestHistoryRow.symbol, OpenInterestHistoryRow.usd)
                     .where(OpenInterestHistoryRow.time.in_((bucket - SNAPSHOT_MS, bucket)))
                     .order_by(OpenInterestHistoryRow.time))
            for symbol, usd in (await session.execute(query)).all():
                out.setdefault(symbol, {})[f"oi{name}"] = usd  # the newer of the two wins
    return out


def change_columns(row: dict[str, Any], refs: dict[str, float] | None, now_ms: int) -> dict[str, Any]:
    """The wire columns for one table row (camelCase), null where the past value isn't stored."""
    refs = refs or {}
    price, oi = row.get("price"), row.get("openInterestUsd")
    return {
        "changePct1h": pct_change(price, refs.get("price1h")),
        "changePct4h": pct_change(price, refs.get("price4h")),
        "openInterestChange1h": pct_change(oi, refs.get("oi1h")),
        "openInterestChange4h": pct_change(oi, refs.get("oi4h")),
        "openInterestChange24h": pct_change(oi, refs.get("oi24h")),
        "nextFundingTime": next_funding_ms(now_ms),
    }
