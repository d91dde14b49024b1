"""The market store: candles and per-minute snapshots in SQL, and the bus consumer that records them.

Writes are batched (one statement, one transaction per call, however many symbols) and idempotent: an upsert on
the primary key, in each dialect's own `INSERT … ON CONFLICT DO UPDATE`, so redelivered bus messages and replays
of the same minutes overwrite instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.bus import Message, Subscription, topics
from marketpulse.bus.topics import CandlesEvent, LiquidationsEvent, TickersEvent
from marketpulse.marketdata.intervals import DAY_MS, HOUR_MS, MINUTE_MS, Interval
from marketpulse.marketdata.liquidations import save_liquidations
from marketpulse.marketdata.models import Candle, MarketRow
from marketpulse.marketdata.resample import Buckets
from marketpulse.marketdata.tables import CandleRow, LiquidationRow, MarketSnapshotRow, OpenInterestHistoryRow
from marketpulse.runtime import Runtime

log = structlog.get_logger(__name__)

Sessions = async_sessionmaker[AsyncSession]

# Rows per statement: well under SQLite's 32766 and PostgreSQL's 32767 bound parameters at 10 columns a row.
BATCH_ROWS = 2_000
# --- writes -----------------------------------------------------------------------------------------------------


async def _upsert(
    sessions: Sessions, model: type[CandleRow | MarketSnapshotRow], rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    if not rows:
        return
    async with sessions.begin() as session:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        for start in range(0, len(rows), BATCH_ROWS):
            stmt = insert(model).values(rows[start : start + BATCH_ROWS])
            updates = {c.name: stmt.excluded[c.name] for c in model.__table__.c if c.name not in keys}
            await session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates))


async def save_candles(sessions: Sessions, exchange: str, candles: Sequence[Candle]) -> int:
    """Insert or overwrite candles (key: exchange, symbol, interval, open time). Returns how many were written."""
    rows = {  # the last of duplicate keys wins, as it would with one statement per candle
        (c.symbol, c.interval, c.open_time): {
            "exchange": exchange, "symbol": c.symbol, "interval": c.interval, "open_time": c.open_time,
            "open": c.open, "high": c.high, "low": c.low, "close": c.close, "volume": c.volume,
            "quote_volume": c.quote_volume,
        }
        for c in candles
    }
    await _upsert(sessions, CandleRow, list(rows.values()), ("exchange", "symbol", "interval", "open_time"))
    return len(rows)


async def save_snapshots(sessions: Sessions, time_ms: int, rows: Sequence[MarketRow]) -> int:
    """Store the table as it was at `time_ms`, one row per symbol, stamped at the start of that minute."""
    minute = time_ms // MINUTE_MS * MINUTE_MS
    values = {
        r.symbol: {
            "symbol": r.symbol, "time": minute, "price": r.price, "change_pct_24h": r.change_pct_24h,
            "quote_volume_24h": r.quote_volume_24h, "funding_rate": r.funding_rate,
            "open_interest_usd": r.open_interest_usd,
        }
        for r in rows
    }
    await _upsert(sessions, MarketSnapshotRow, list(values.values()), ("symbol", "time"))
    return len(values)


async def prune(sessions: Sessions, now_ms: int, retention_days: int) -> int:
    """Delete candles, snapshots, open-interest history and liquidations older than `retention_days` before
    `now_ms`; returns the rows deleted."""
    cutoff = now_ms - retention_days * DAY_MS
    async with sessions.begin() as session:
        results = [
            await session.execute(delete(CandleRow).where(CandleRow.open_time < cutoff)),
            await session.execute(delete(MarketSnapshotRow).where(MarketSnapshotRow.time < cutoff)),
            await session.execute(delete(OpenInterestHistoryRow).where(OpenInterestHistoryRow.time < cutoff)),
            await session.execute(delete(LiquidationRow).where(LiquidationRow.time < cutoff)),
        ]
    return sum(int(getattr(r, "rowcount", 0) or 0) for r in results)


# --- reads -------------------------------------------------------------------------------------------------------


async def load_candles(
    sessions: Sessions, symbol: str, interval: str = "1h", start_ms: int | None = None, end_ms: int | None = None,
    limit: int | None = 500, *, exchange: str | None = None,
) -> list[Candle]:
    """Candles opening in [start_ms, end_ms), oldest first; with `limit`, the newest `limit` of them.

    Stored candles of `interval` are served as they are. Otherwise, when 1-minute candles are stored, they are
    aggregated exactly (first open, max high, min low, last close, summed volumes) into buckets aligned to the
    interval in UTC; a bucket still missing minutes (the current hour) comes back with `closed=False`.
    """
    wanted = Interval.parse(interval)
    step = wanted.ms
    async with sessions() as session:
        stored = await _select(session, symbol, wanted, start_ms, end_ms, limit, exchange)
        if stored or wanted is Interval.M1:
            return stored
        window = await _minute_window(session, symbol, step, start_ms, end_ms, limit, exchange)
        if window is None:
            return []
        lo, hi = window
        minutes = await _select(session, symbol, "1m", lo, hi, None, exchange)
    buckets = aggregate(minutes, wanted)
    return buckets[-limit:] if limit else buckets


async def has_candles(sessions: Sessions, symbol: str) -> bool:
    """Whether any candle of `symbol` is stored (an unknown symbol is a 404, not an empty list)."""
    async with sessions() as session:
        query = select(CandleRow.open_time).where(CandleRow.symbol == symbol).limit(1)
        return (await session.scalar(query)) is not None


async def load_funding(
    sessions: Sessions, symbol: str, start_ms: int | None, end_ms: int | None
) -> list[tuple[int, float]]:
    """(minute, funding rate) from the per-minute snapshots in [start_ms, end_ms), oldest first; minutes without a
    known rate are left out."""
    query = select(MarketSnapshotRow.time, MarketSnapshotRow.funding_rate).where(
        MarketSnapshotRow.symbol == symbol, MarketSnapshotRow.funding_rate.is_not(None))
    if start_ms is not None:
        query = query.where(MarketSnapshotRow.time >= start_ms)
    if end_ms is not None:
        query = query.where(MarketSnapshotRow.time < end_ms)
    async with sessions() as session:
        rows = (await session.execute(query.order_by(MarketSnapshotRow.time))).all()
    return [(t, float(rate)) for t, rate in rows if rate is not None]


async def _select(
    session: AsyncSession, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int | None,
    exchange: str | None,
) -> list[Candle]:
    query = select(CandleRow).where(CandleRow.symbol == symbol, CandleRow.interval == interval)
    if start_ms is not None:
        query = query.where(CandleRow.open_time >= start_ms)
    if end_ms is not None:
        query = query.where(CandleRow.open_time < end_ms)
    if exchange is not None:
        query = query.where(CandleRow.exchange == exchange)
    query = query.order_by(CandleRow.open_time.desc(), CandleRow.exchange)
    if limit:
        query = query.limit(limit)
    rows = (await session.scalars(query)).all()
    by_time: dict[int, Candle] = {}
    for r in rows:  # two exchanges with the same symbol: serve one candle per time
        by_time.setdefault(r.open_time, Candle(r.symbol, r.interval, r.open_time, r.open, r.high, r.low, r.close,
                                               r.volume, r.quote_volume))
    return [by_time[t] for t in sorted(by_time)]


async def _minute_window(
    session: AsyncSession, symbol: str, step: int, start_ms: int | None, end_ms: int | None, limit: int | None,
    exchange: str | None,
) -> tuple[int | None, int | None] | None:
    """The minute range covering whole buckets: from the bucket holding start_ms, at most `limit` buckets back
    from the newest stored minute before end_ms; None when no minute is stored."""
    query = select(func.max(CandleRow.open_time)).where(CandleRow.symbol == symbol, CandleRow.interval == "1m")
    if end_ms is not None:
        query = query.where(CandleRow.open_time < end_ms)
    if exchange is not None:
        query = query.where(CandleRow.exchange == exchange)
    newest = await session.scalar(query)
    if newest is None:
        return None
    lo = None if start_ms is None else start_ms // step * step
    if limit:
        lo = max(lo or 0, (newest // step - limit + 1) * step)
    return lo, end_ms


def aggregate(minutes: Sequence[Candle], interval: Interval, source: Interval = Interval.M1) -> list[Candle]:
    """Pure: `source` candles (1-minute by default; sorted by time) into `interval` buckets aligned to UTC (the
    library's `Buckets`); a bucket missing source candles comes back with `closed=False`."""
    if not minutes:
        return []
    time = np.fromiter((c.open_time for c in minutes), dtype=np.int64, count=len(minutes))
    columns = {name: np.fromiter((getattr(c, name) for c in minutes), dtype=np.float64, count=len(minutes))
               for name in ("open", "high", "low", "close", "volume", "quote_volume")}
    b = Buckets(time, source, interval)
    rows = zip(b.time.tolist(), b.first(columns["open"]).tolist(), b.max(columns["high"]).tolist(),
               b.min(columns["low"]).tolist(), b.last(columns["close"]).tolist(), b.sum(columns["volume"]).tolist(),
               b.sum(columns["quote_volume"]).tolist(), b.complete.tolist(), strict=True)
    symbol = minutes[0].symbol
    return [Candle(symbol, interval.value, t, o, h, lo, c, v, q, closed=done) for t, o, h, lo, c, v, q, done in rows]


# --- the recorder -------------------------------------------------------------------------------------------------


class MarketRecorder:
    """Bus consumer: stores every closed candle, the table once per market minute, and prunes once per market hour.

    Time is the market's, read off the messages: a replay runs in 2025 while the wall clock says otherwise, and
    pruning by the wall clock would delete everything it just stored.
    """

    GROUP = "market-recorder"

    def __init__(self, runtime: Runtime, *, exchange: str | None = None) -> None:
        self.runtime = runtime
        self.exchange = exchange or runtime.settings.source
        self._subscriptions: list[Subscription] = []
        self._minute: int | None = None  # the market minute whose snapshots are being collected
        self._pending: dict[str, MarketRow] = {}
        self._pruned_hour: int | None = None

    async def start(self) -> None:
        bus = self.runtime.bus
        self._subscriptions = [
            await bus.subscribe(topics.MARKET_CANDLES, self.GROUP, self.on_candles),
            await bus.subscribe(topics.MARKET_TICKERS, self.GROUP, self.on_tickers),
            await bus.subscribe(topics.MARKET_LIQUIDATIONS, self.GROUP, self.on_liquidations),
        ]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions = []
        await self.flush()

    async def on_candles(self, msg: Message[CandlesEvent]) -> None:
        candles = msg.data.candles
        if not candles:
            return
        await save_candles(self.runtime.sessions, self.exchange, candles)
        market_now = max(Interval.parse(c.interval).close_time(c.open_time) for c in candles)
        if self._pruned_hour != market_now // HOUR_MS:
            self._pruned_hour = market_now // HOUR_MS
            deleted = await prune(self.runtime.sessions, market_now, self.runtime.settings.retention_days)
            if deleted:
                log.info("pruned market data", rows=deleted, retention_days=self.runtime.settings.retention_days)

    async def on_liquidations(self, msg: Message[LiquidationsEvent]) -> None:
        await save_liquidations(self.runtime.sessions, self.exchange, msg.data.liquidations)

    async def on_tickers(self, msg: Message[TickersEvent]) -> None:
        """Each symbol's first row in a market minute is its snapshot for that minute. Rows are buffered and the
        minute is written in one batch when the market moves on (Binance sends only changed rows, so a minute's
        symbols arrive over many messages)."""
        minute = msg.data.time // MINUTE_MS * MINUTE_MS
        if self._minute is not None and minute < self._minute:
            return  # a redelivered message from a minute already written
        if self._minute is not None and minute > self._minute:
            await self.flush()
        self._minute = minute
        for row in msg.data.rows:
            self._pending.setdefault(row.symbol, row)

    async def flush(self) -> None:
        """Write the buffered minute's snapshots (called when the minute ends, and on stop)."""
        if self._minute is not None and self._pending:
            await save_snapshots(self.runtime.sessions, self._minute, list(self._pending.values()))
        self._pending = {}

