"""`BinanceSource`: Binance USD-M perpetuals onto the bus (tickers, closed 1m candles, open interest in USD).

Tickers, funding and liquidations come from the combined stream
`/market/stream?streams=!ticker@arr/!markPrice@arr@1s/!forceOrder@arr`.
Closed 1m candles come from REST: Binance has no all-symbols kline stream and caps a connection at 200
streams, so ~600 `<symbol>@kline_1m` streams would need four more connections. Instead, right after each
minute closes we ask `/fapi/v1/klines?limit=2` per symbol (weight 1 each, ~600 of Binance's 2400/min), with
bounded concurrency; the first round asks for the last two hours (the backfill), and a round after a gap asks
for as many minutes as were missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpx
import msgspec
import structlog
from prometheus_client import Counter

from marketpulse.bus import EventBus, topics
from marketpulse.bus.topics import CandlesEvent, LiquidationsEvent, OpenInterestEvent, TickersEvent
from marketpulse.clock import Clock, SystemClock
from marketpulse.marketdata.binance.backoff import Backoff
from marketpulse.marketdata.binance.frames import (
    MARKET_STREAMS,
    MINUTE_MS,
    FrameRejected,
    LiquidationBatch,
    MarkPriceBatch,
    closed_candles,
    decode_frame,
)
from marketpulse.marketdata.binance.rest import BinanceApiError, BinanceRest, Sleep
from marketpulse.marketdata.binance.stream import ReconnectingStream, market_stream_url
from marketpulse.marketdata.models import Candle, MarketRow, MarkPrice
from marketpulse.marketdata.table import MarketTable
from marketpulse.metrics import INGEST_FRAMES
from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

FRAMES_REJECTED = Counter(
    "marketpulse_ws_frames_rejected", "WebSocket frames dropped as unusable; the connection stays up", ["reason"]
)

BACKFILL_MINUTES = 120
MAX_KLINES_PER_REQUEST = 1000  # Binance's cap for /fapi/v1/klines
POLL_DELAY_MS = 1_500  # ask for minute M's candle this long after it closes, so Binance has finalized it
SYMBOLS_REFRESH_MS = 3_600_000  # listings and delistings
CANDLES_PER_MESSAGE = 2_000  # keeps the backfill's bus messages small
REST_ERRORS = (httpx.HTTPError, BinanceApiError, msgspec.DecodeError, ValueError)


class BinanceSource:
    name = "binance"

    def __init__(
        self, settings: Settings, clock: Clock | None = None, *, sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None, rest_concurrency: int = 8,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.table = MarketTable()
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._limit = asyncio.Semaphore(rest_concurrency)
        self._active: frozenset[str] = frozenset()
        self._marks: dict[str, float] = {}  # latest mark price per symbol, from the stream
        self._last_candle: dict[str, int] = {}  # open time of the last candle published per symbol
        self.stream: ReconnectingStream | None = None

    async def run(self, bus: EventBus) -> None:
        rest = BinanceRest(self.settings.binance_rest_url, self.clock, sleep=self._sleep)
        try:
            await self._load_symbols_until_ok(rest)
            self.stream = ReconnectingStream(
                market_stream_url(self.settings.binance_ws_url, MARKET_STREAMS),
                lambda raw: self._on_message(bus, raw), clock=self.clock, sleep=self._sleep, backoff=self._backoff,
            )
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.stream.run(), name="binance:stream")
                tasks.create_task(self._candles_forever(rest, bus), name="binance:candles")
                tasks.create_task(self._open_interest_forever(rest, bus), name="binance:open-interest")
                tasks.create_task(self._symbols_forever(rest), name="binance:symbols")
        finally:
            await rest.aclose()

    @property
    def active_symbols(self) -> frozenset[str]:
        return self._active

    # --- symbols ---

    async def _load_symbols(self, rest: BinanceRest) -> None:
        active = await rest.active_symbols()
        self._active = frozenset(active.precisions)
        self.table.set_precisions(active.precisions)
        log.info("binance symbols loaded", active=len(self._active))

    async def _load_symbols_until_ok(self, rest: BinanceRest) -> None:
        backoff = Backoff()
        while True:
            try:
                return await self._load_symbols(rest)
            except REST_ERRORS as exc:
                log.warning("binance exchangeInfo failed", error=repr(exc))
                await self._sleep(backoff.next_delay())

    async def _symbols_forever(self, rest: BinanceRest) -> None:
        while True:
            await self.clock.sleep_until(self.clock.now_ms() + SYMBOLS_REFRESH_MS)
            try:
                await self._load_symbols(rest)
            except REST_ERRORS as exc:
                log.warning("binance exchangeInfo refresh failed", error=repr(exc))

    # --- stream frames ---

    async def _on_message(self, bus: EventBus, raw: str | bytes) -> bool:
        INGEST_FRAMES.labels(source="binance").inc()
        try:
            batch = decode_frame(raw)
        except FrameRejected as exc:
            FRAMES_REJECTED.labels(reason=exc.reason).inc()
            log.warning("binance frame rejected", reason=exc.reason, detail=exc.detail[:200])
            return False
        if isinstance(batch, LiquidationBatch):
            liquidations = [liq for liq in batch.liquidations if liq.symbol in self._active]
            if liquidations:
                await bus.publish(topics.MARKET_LIQUIDATIONS, LiquidationsEvent(liquidations))
            return True
        if isinstance(batch, MarkPriceBatch):
            rows, time = self._apply_marks(batch.marks), max((m.time for m in batch.marks), default=0)
        else:
            tickers = [t for t in batch.tickers if t.symbol in self._active]
            rows, time = self.table.apply_tickers(tickers), max((t.time for t in tickers), default=0)
        if rows:
            await bus.publish(topics.MARKET_TICKERS, TickersEvent(time, list(rows)))
        return True

    def _apply_marks(self, marks: Iterable[MarkPrice]) -> list[MarketRow]:
        """Apply mark prices; returns the rows whose funding rate changed."""
        active = [m for m in marks if m.symbol in self._active]
        rows = ((m, self.table.get(m.symbol)) for m in active)
        changed = [r for m, r in rows if r is not None and r.funding_rate != m.funding_rate]
        self.table.apply_mark_prices(active)
        self._marks.update((m.symbol, m.mark_price) for m in active)
        return changed

    # --- candles ---

    async def _candles_forever(self, rest: BinanceRest, bus: EventBus) -> None:
        while True:
            await self._poll_candles(rest, bus)
            next_close = (self.clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS
            await self.clock.sleep_until(next_close + POLL_DELAY_MS)

    async def _poll_candles(self, rest: BinanceRest, bus: EventBus) -> None:
        now = self.clock.now_ms()
        fetched = await asyncio.gather(*(self._new_candles(rest, s, now) for s in sorted(self._active)))
        candles = [c for batch in fetched for c in batch]
        for start in range(0, len(candles), CANDLES_PER_MESSAGE):
            chunk = candles[start : start + CANDLES_PER_MESSAGE]
            await bus.publish(topics.MARKET_CANDLES, CandlesEvent(chunk))

    async def _new_candles(self, rest: BinanceRest, symbol: str, now: int) -> list[Candle]:
        last = self._last_candle.get(symbol)
        missed = BACKFILL_MINUTES if last is None else (now - last) // MINUTE_MS - 1
        limit = min(MAX_KLINES_PER_REQUEST, max(2, missed + 1))  # +1: the still-open minute comes last
        try:
            async with self._limit:
                candles = await rest.klines(symbol, limit=limit)
        except REST_ERRORS as exc:
            log.warning("binance klines failed", symbol=symbol, error=repr(exc))
            return []
        fresh = closed_candles(candles, now, after_open_time=-1 if last is None else last)
        if fresh:
            self._last_candle[symbol] = fresh[-1].open_time
        return fresh

    # --- open interest ---

    async def _open_interest_forever(self, rest: BinanceRest, bus: EventBus) -> None:
        while True:
            started = self.clock.now_ms()
            try:
                await self._refresh_open_interest(rest, bus)
            except REST_ERRORS as exc:
                log.warning("binance open interest refresh failed", error=repr(exc))
            await self.clock.sleep_until(started + self.settings.open_interest_refresh_s * 1000)

    async def _refresh_open_interest(self, rest: BinanceRest, bus: EventBus) -> None:
        marks = dict(self._marks)
        if not self._active <= marks.keys():  # the stream has not priced everything yet: one call prices all
            marks = {**await rest.mark_prices(), **marks}
        usd = await asyncio.gather(*(self._open_interest_usd(rest, s, marks.get(s)) for s in sorted(self._active)))
        data = {s: v for s, v in zip(sorted(self._active), usd, strict=True) if v is not None}
        self.table.apply_open_interest(data)
        await bus.publish(topics.MARKET_OPEN_INTEREST, OpenInterestEvent(self.clock.now_ms(), data))

    async def _open_interest_usd(self, rest: BinanceRest, symbol: str, mark: float | None) -> float | None:
        if mark is None:
            return None
        try:
            async with self._limit:
                return (await rest.open_interest(symbol, mark)).usd
        except REST_ERRORS as exc:
            log.warning("binance open interest failed", symbol=symbol, error=repr(exc))
            return None
