"""`/market/{symbol}`: the symbol page, and `GET /api/v1/charts/{symbol}`: its candles (store + candle library)
with the chosen indicator studies computed server-side."""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from marketpulse.api.types import Symbol
from marketpulse.charts.core import KINDS, Columns, compute, merge_candles, parse_studies
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import Interval, IntervalField
from marketpulse.marketdata.models import Candle, normalize_symbol
from marketpulse.marketdata.open_interest import last_per_bucket
from marketpulse.marketdata.store import Sessions, aggregate, load_candles, load_funding
from marketpulse.marketdata.views import CandleOut, candle_to_wire
from marketpulse.times import EpochMs
from marketpulse.web.account_pages import render

router = APIRouter()
# The library's exchanges, in order: USD-M perpetuals (the table's markets; `pulse demo` imports its sample there),
# then Binance spot (`pulse data download`'s default), whose prices track the perpetual's closely enough to chart.
LIBRARY_EXCHANGES = ("binance_swap", "binance")


class LineOut(BaseModel):
    name: str
    points: list[tuple[int, float | None]] = Field(description="[open time, value]; null while warming up")


class MarkerOut(BaseModel):
    time: int
    side: str = Field(description="buy or sell")


class StudyOut(BaseModel):
    id: str = Field(description="kind:parameters, e.g. ema:20")
    kind: str
    pane: str = Field(description="price: drawn over the candles; otherwise its own pane")
    lines: list[LineOut]
    markers: list[MarkerOut]


class ChartOut(BaseModel):
    symbol: str
    interval: str
    candles: list[CandleOut] = Field(description="Oldest first: the candle library's, then the store's")
    studies: list[StudyOut]
    sources: dict[str, int] = Field(description="Candles taken from each source (store, library)")
    funding: list[tuple[int, float]] = Field(
        description="[candle open time, funding rate] from the per-minute snapshots: each candle's last known rate")


@router.get("/api/v1/charts/{symbol}", response_model=ChartOut, tags=["market"],
            responses={404: {"description": "No candles for this symbol and it is not in the table"}})
async def chart(
    request: Request,
    symbol: Annotated[Symbol, Path()],
    interval: Annotated[IntervalField, Query(description="Candle interval, 1m … 1d")] = Interval.H1,
    limit: Annotated[int, Query(ge=2, le=1500)] = 500,
    end: Annotated[EpochMs | None, Query(description="Open time < this: ISO 8601 (UTC) or epoch ms")] = None,
    studies: Annotated[str, Query(max_length=300, description=f"Comma-separated kind[:params]: {', '.join(KINDS)}"
                                  " (e.g. ema:20,bb:20:2,supertrend:10:3,utbot:1:10,rsi:14,macd:12:26:9,atr:14)")]
    = "",
) -> dict[str, Any]:
    """Candles of the store and the candle library merged (the store wins on a shared open time), and each study's
    series over them, computed by `marketpulse.indicators`."""
    try:
        chosen = parse_studies(studies)
    except ValueError as exc:
        raise RequestValidationError([{"loc": ("query", "studies"), "msg": str(exc), "type": "value_error",
                                       "input": studies}]) from None
    runtime = request.app.state.runtime
    wanted = normalize_symbol(symbol)
    stored = await stored_candles(runtime.sessions, wanted, interval, end, limit)
    anchor = end if end is not None else runtime.market_now_ms() + interval.ms
    library_root = runtime.settings.data_dir / "library"
    library = await asyncio.to_thread(library_candles, library_root, wanted, interval, anchor - limit * interval.ms,
                                      anchor)
    candles = merge_candles(library, stored, limit)
    if not candles and request.app.state.market_feed.get(wanted) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown symbol {wanted}")
    funding = await load_funding(runtime.sessions, wanted, candles[0].open_time, end) if candles else []
    stored_times = {c.open_time for c in stored}
    from_store = sum(1 for c in candles if c.open_time in stored_times)
    return {"symbol": wanted, "interval": interval.value, "candles": [candle_to_wire(c) for c in candles],
            "studies": compute(Columns.of(candles), chosen),
            "sources": {"store": from_store, "library": len(candles) - from_store},
            "funding": last_per_bucket(funding, interval.ms)}


async def stored_candles(sessions: Sessions, symbol: str, interval: Interval, end: int | None,
                         limit: int) -> list[Candle]:
    """The store's candles at `interval` (stored, else built from its minutes), else, for the intervals made of
    hours, from its hourly candles: a process whose source sends hourly candles still charts 4h and 1d."""
    candles = await load_candles(sessions, symbol, interval, None, end, limit)
    if candles or interval.ms <= Interval.H1.ms:
        return candles
    hours = interval.holds(Interval.H1)
    start = None if end is None else end - limit * interval.ms
    hourly = await load_candles(sessions, symbol, Interval.H1, start, end, limit * hours)
    return aggregate(hourly, interval, source=Interval.H1)[-limit:]


def library_candles(root: FilePath, symbol: str, interval: Interval, start: int, end: int) -> list[Candle]:
    """The library's candles at `interval` in [start, end), else its 1m candles resampled (complete buckets only),
    from the first exchange in LIBRARY_EXCHANGES holding either; none when no exchange does."""
    from marketpulse.marketdata.library import CandleLibrary
    from marketpulse.marketdata.resample import resample

    if not root.is_dir():
        return []
    library = CandleLibrary(root)
    for exchange in LIBRARY_EXCHANGES:
        frame = library.read(exchange, symbol, interval, start, end)
        if not len(frame) and interval is not Interval.M1:
            minutes = library.read(exchange, symbol, Interval.M1, start, end)
            frame = resample(minutes, interval) if len(minutes) else minutes
        if len(frame):
            return frame_candles(frame, symbol, interval)
    return []


def frame_candles(frame: CandleFrame, symbol: str, interval: Interval) -> list[Candle]:
    # The library keeps base volume only: quote volume is estimated at the close, enough for a volume histogram.
    rows = zip(frame.time.tolist(), frame.open.tolist(), frame.high.tolist(), frame.low.tolist(),
               frame.close.tolist(), frame.volume.tolist(), strict=True)
    return [Candle(symbol, interval.value, t, o, h, lo, c, v, v * c) for t, o, h, lo, c, v in rows]


@router.get("/market/{symbol}", response_class=HTMLResponse, include_in_schema=False)
async def symbol_page(symbol: Annotated[Symbol, Path()]) -> HTMLResponse:
    """The page holds no data: `symbol.js` asks the chart endpoint and listens on Socket.IO."""
    wanted = normalize_symbol(symbol)
    return render(wanted, template="symbol.html", scripts=("symbol.js",), narrow=False,
                  intervals=[i.value for i in Interval], kinds=list(KINDS), symbol=wanted)
