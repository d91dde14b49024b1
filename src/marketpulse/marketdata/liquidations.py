"""Liquidations: the replay's synthesized ones (pure), and the store (save, list, per-symbol sums over 1h/4h/24h).

Binance's `!forceOrder@arr` (decoded in `binance/frames.py`) and the replay both publish `Liquidation`s on
`market.liquidations`; the recorder stores them keyed by the event itself (`Liquidation.id`), so a redelivered or
replayed one upserts instead of counting twice; they are pruned after PULSE_RETENTION_DAYS like the candles.

The replay has no liquidation data, so it **synthesizes** them from its minutes: a minute that moves sharply
(against the hour's typical minute and in absolute terms) liquidates longs when it falls and shorts when it rises,
in a few orders spread along the move, sized by the minute's quote volume and the size of the move.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.marketdata.intervals import HOUR_MS
from marketpulse.marketdata.models import Liquidation
from marketpulse.marketdata.synthetic import MinuteBars, symbol_rng
from marketpulse.marketdata.tables import LiquidationRow

Sessions = async_sessionmaker[AsyncSession]

SUM_WINDOWS = {"1h": HOUR_MS, "4h": 4 * HOUR_MS, "24h": 24 * HOUR_MS}
MINUTE_MS = 60_000

# A minute is "sharp" when it moves this much and this many times the hour's median minute move.
SHARP_MOVE = 0.003
SHARP_VS_TYPICAL = 3.0
# Share of a sharp minute's quote volume that is forced, per unit of its move over SHARP_MOVE (capped).
FORCED_SHARE = 0.02
MAX_FORCED_SHARE = 0.25


# --- synthesis (pure) --------------------------------------------------------------------------------------------


def synthesize_liquidations(bars: MinuteBars, *, seed: int, precision: int = 8) -> list[list[Liquidation]]:
    """The liquidations of each of the hour's 60 minutes (most are empty), oldest first within a minute."""
    rng = symbol_rng(seed, bars.symbol, 4, bars.hour_ms // HOUR_MS)
    moves = (bars.close - bars.open) / np.maximum(bars.open, 1e-300)
    typical = float(np.median(np.abs(moves))) or 1e-12
    out: list[list[Liquidation]] = []
    for m in range(len(moves)):
        move = float(moves[m])
        size = abs(move)
        if size < SHARP_MOVE or size < SHARP_VS_TYPICAL * typical or bars.quote_volume[m] <= 0:
            out.append([])
            continue
        side = "long" if move < 0 else "short"  # a fall forces longs out, a rise shorts
        share = min(MAX_FORCED_SHARE, FORCED_SHARE * size / SHARP_MOVE)
        total_usd = float(bars.quote_volume[m]) * share
        count = int(min(12, 1 + size / SHARP_MOVE + rng.poisson(1.5)))
        weights = rng.pareto(1.5, count) + 0.1  # a few big positions among many small ones
        parts = total_usd * weights / weights.sum()
        fractions = np.sort(rng.uniform(0.05, 0.95, count))
        start, end = float(bars.open[m]), float(bars.low[m] if move < 0 else bars.high[m])
        minute_ms = bars.hour_ms + m * MINUTE_MS
        events = []
        for usd, fraction in zip(parts.tolist(), fractions.tolist(), strict=True):
            price = round(start + (end - start) * fraction, precision)
            if price <= 0 or usd <= 0:
                continue
            quantity = float(f"{usd / price:.6g}")
            if quantity <= 0:
                continue
            events.append(Liquidation(bars.symbol, side, price, quantity, round(price * quantity, 2),
                                      minute_ms + int(fraction * MINUTE_MS)))
        out.append(events)
    return out


# --- the store ---------------------------------------------------------------------------------------------------


async def save_liquidations(sessions: Sessions, exchange: str, liquidations: Sequence[Liquidation]) -> int:
    """Insert or overwrite (same event, same id); returns how many distinct events were written."""
    rows = {
        liq.id: {"id": liq.id, "exchange": exchange, "symbol": liq.symbol, "side": liq.side, "price": liq.price,
                 "quantity": liq.quantity, "usd": liq.usd, "time": liq.time}
        for liq in liquidations
    }
    if not rows:
        return 0
    async with sessions.begin() as session:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        values = list(rows.values())
        for start in range(0, len(values), 2_000):
            stmt = insert(LiquidationRow).values(values[start : start + 2_000])
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
    return len(rows)


async def load_liquidations(
    sessions: Sessions, symbol: str | None, start_ms: int | None, end_ms: int | None, limit: int,
) -> list[dict[str, Any]]:
    """Liquidations in [start, end), newest first, at most `limit`; every symbol's when `symbol` is None."""
    query = select(LiquidationRow)
    if symbol is not None:
        query = query.where(LiquidationRow.symbol == symbol)
    if start_ms is not None:
        query = query.where(LiquidationRow.time >= start_ms)
    if end_ms is not None:
        query = query.where(LiquidationRow.time < end_ms)
    query = query.order_by(LiquidationRow.time.desc(), LiquidationRow.id.desc()).limit(limit)
    async with sessions() as session:
        rows = (await session.scalars(query)).all()
    return [liquidation_json(r) for r in rows]


def liquidation_json(row: LiquidationRow | Liquidation) -> dict[str, Any]:
    return {"symbol": row.symbol, "side": row.side, "price": row.price, "quantity": row.quantity, "usd": row.usd,
            "time": row.time}


async def has_liquidations(sessions: Sessions, symbol: str) -> bool:
    async with sessions() as session:
        query = select(LiquidationRow.id).where(LiquidationRow.symbol == symbol).limit(1)
        return (await session.scalar(query)) is not None


async def liquidation_sums(sessions: Sessions, now_ms: int) -> dict[str, dict[str, float]]:
    """Per symbol, the USD liquidated in the 1h, 4h and 24h up to `now_ms` (market time), longs and shorts
    together: `{"BTCUSDT": {"1h": …, "4h": …, "24h": …}}` (symbols with none in 24h are absent)."""
    t = LiquidationRow.time
    columns = [func.sum(case((t > now_ms - ms, LiquidationRow.usd), else_=0.0)) for ms in SUM_WINDOWS.values()]
    query = (select(LiquidationRow.symbol, *columns)
             .where(t > now_ms - SUM_WINDOWS["24h"], t <= now_ms).group_by(LiquidationRow.symbol))
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    return {row[0]: {w: round(float(v or 0.0), 2) for w, v in zip(SUM_WINDOWS, row[1:], strict=True)}
            for row in rows}


def sums_of(rows: Iterable[tuple[str, int, float]], now_ms: int) -> dict[str, dict[str, float]]:
    """`liquidation_sums` over (symbol, time, usd) rows in memory (its specification in tests)."""
    out: dict[str, dict[str, float]] = {}
    for symbol, time, usd in rows:
        if not now_ms - SUM_WINDOWS["24h"] < time <= now_ms:
            continue
        sums = out.setdefault(symbol, dict.fromkeys(SUM_WINDOWS, 0.0))
        for window, ms in SUM_WINDOWS.items():
            if time > now_ms - ms:
                sums[window] += usd
    return {s: {w: round(v, 2) for w, v in sums.items()} for s, sums in out.items()}


async def newest_liquidation_ms(sessions: Sessions) -> int | None:
    async with sessions() as session:
        return await session.scalar(select(func.max(LiquidationRow.time)))
