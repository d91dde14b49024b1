"""HTTP: the live market table, one symbol, candle history, and the open-interest cache and its ingest."""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field, TypeAdapter

from marketpulse.accounts.views import CALLER_REFUSALS, caller_plan
from marketpulse.api.pages import Page
from marketpulse.api.security import read_limited_body, require_api_key
from marketpulse.api.types import Symbol
from marketpulse.bus import topics
from marketpulse.marketdata.changes import change_columns, reference_values
from marketpulse.marketdata.intervals import Interval, IntervalField
from marketpulse.marketdata.liquidations import has_liquidations, liquidation_sums, load_liquidations
from marketpulse.marketdata.models import Candle, normalize_symbol
from marketpulse.marketdata.open_interest import (
    InvalidOpenInterest,
    OpenInterestCache,
    has_open_interest_history,
    load_open_interest_history,
    parse_ingest_body,
    save_open_interest,
)
from marketpulse.marketdata.store import has_candles, load_candles
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.realtime.tiers import plan_of, tier_of
from marketpulse.storage.commits import commit_count
from marketpulse.times import EpochMs
from marketpulse.wire import WIRE_MODEL, to_wire

router = APIRouter(prefix="/api/v1/market", tags=["market"])


class SortKey(StrEnum):
    symbol = "symbol"
    price = "price"
    changePct24h = "changePct24h"
    quoteVolume24h = "quoteVolume24h"
    fundingRate = "fundingRate"
    openInterestUsd = "openInterestUsd"
    liquidations1h = "liquidations1h"
    liquidations4h = "liquidations4h"
    liquidations24h = "liquidations24h"
    changePct1h = "changePct1h"
    changePct4h = "changePct4h"
    openInterestChange1h = "openInterestChange1h"
    openInterestChange4h = "openInterestChange4h"
    openInterestChange24h = "openInterestChange24h"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


class MarketRowOut(BaseModel):
    model_config = WIRE_MODEL

    symbol: str
    time: int = Field(description="Market time of the last update, epoch ms")
    price: float
    change_pct_24h: float
    quote_volume_24h: float = Field(description="24h volume in USDT")
    funding_rate: float | None = Field(description="Current funding rate (0.0001 = 0.01%)")
    open_interest_usd: float | None = Field(
        description="Open interest, USD notional; null on plans without the open-interest column (free)")
    price_precision: int | None = Field(description="Decimals the exchange quotes this symbol's price with")
    liquidations_1h: float = Field(0.0, alias="liquidations1h",
                                   description="USD liquidated (longs and shorts) in the last hour of market time")
    liquidations_4h: float = Field(0.0, alias="liquidations4h", description="USD liquidated in the last 4 hours")
    liquidations_24h: float = Field(0.0, alias="liquidations24h", description="USD liquidated in the last 24 hours")
    change_pct_1h: float | None = Field(None, alias="changePct1h",
                                        description="Price change over the last hour, % (null: no candle then)")
    change_pct_4h: float | None = Field(None, alias="changePct4h", description="Price change over 4 hours, %")
    open_interest_change_1h: float | None = Field(
        None, alias="openInterestChange1h", description="Open-interest change over 1 hour, % (null without the "
        "open-interest column, or no snapshot then)")
    open_interest_change_4h: float | None = Field(None, alias="openInterestChange4h",
                                                  description="Open-interest change over 4 hours, %")
    open_interest_change_24h: float | None = Field(None, alias="openInterestChange24h",
                                                   description="Open-interest change over 24 hours, %")
    next_funding_time: int | None = Field(None, alias="nextFundingTime",
                                          description="Next funding settlement (00/08/16 UTC), epoch ms")


class MarketDataOut(Page[MarketRowOut]):
    model_config = WIRE_MODEL

    count: int
    plan: str = Field(description="The caller's plan (anonymous: free), which decides the symbols and columns")
    as_of: int | None = Field(description="Market time of the newest row, epoch ms")


class SymbolOut(BaseModel):
    data: MarketRowOut


class CandleOut(BaseModel):
    model_config = WIRE_MODEL

    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float = Field(description="Volume in USDT")
    closed: bool = Field(description="False for a bucket still filling (the current hour)")


class HistoryOut(Page[CandleOut]):
    """`data`: the candles, oldest first."""

    symbol: str
    interval: str


def market_feed(request: Request) -> MarketFeed:
    feed: MarketFeed = request.app.state.market_feed
    return feed


async def _feed(request: Request) -> MarketFeed:  # the dependency: async, a plain def runs in the thread pool
    return market_feed(request)


_MARKET_DATA = TypeAdapter(MarketDataOut)
ViewKey = tuple[str, SortKey, SortOrder, str, int | None]
Inputs = tuple[int, dict[str, Any], dict[str, Any]]  # market time, liquidation sums, 1h/4h references


class EncodedViews:
    """`/data`'s answers as bytes, one per view (plan, sort, order, filter, limit), built and encoded once per state.

    A state is the table's version, this process's commit count (the liquidation sums and the 1h/4h references are
    read from the database) and at most VIEW_TTL_S of monotonic time (what another process stored is seen within
    that). The database inputs are read once per state, each view is encoded once through `MarketDataOut` (the
    documented response model, so the bytes are what FastAPI would have sent), and every read in between is a
    dict lookup. At most MAX_VIEWS views are kept per state (an unbounded `q` can't grow the memory)."""

    MAX_VIEWS = 256
    VIEW_TTL_S = 1.0

    def __init__(self) -> None:
        self._state: tuple[int, int] = (-1, -1)
        self._at = 0.0
        self._views: dict[ViewKey, bytes] = {}
        # The state's database inputs, read once: the 64 requests that miss at a change wait for one read.
        self._inputs: asyncio.Future[Inputs] | None = None

    def _current(self, feed: MarketFeed) -> tuple[int, int]:
        state, at = (feed.version, commit_count()), time.monotonic()
        if state != self._state or at - self._at >= self.VIEW_TTL_S:
            self._state, self._at = state, at
            self._views.clear()
            self._inputs = None
        return state

    async def get(self, feed: MarketFeed, key: ViewKey, runtime: Any) -> bytes:
        state = self._current(feed)
        encoded = self._views.get(key)
        if encoded is not None:
            return encoded
        if self._inputs is None or (self._inputs.done() and self._inputs.exception() is not None):
            self._inputs = asyncio.ensure_future(self._load(feed, runtime))
        inputs = await asyncio.shield(self._inputs)  # a cancelled request doesn't cancel the others' read
        if self._current(feed) != state:  # changed while the inputs were read: answer, keep nothing
            return self._encode(feed, key, inputs)
        encoded = self._views.get(key)  # another request may have encoded it meanwhile
        if encoded is None:
            encoded = self._encode(feed, key, inputs)
            if len(self._views) < self.MAX_VIEWS:
                self._views[key] = encoded
        return encoded

    @staticmethod
    async def _load(feed: MarketFeed, runtime: Any) -> Inputs:
        now = feed.updated_at if feed.updated_at is not None else runtime.market_now_ms()
        return now, await liquidation_sums(runtime.sessions, now), await reference_values(runtime.sessions, now)

    @staticmethod
    def _encode(feed: MarketFeed, key: ViewKey, inputs: Inputs) -> bytes:
        plan, sort, order, needle, limit = key
        now, sums, refs = inputs
        rows = [{**r, **_liquidation_columns(sums.get(r["symbol"])), **change_columns(r, refs.get(r["symbol"]), now)}
                for r in tier_of(plan).rows(feed.snapshot())]
        rows = sort_rows(filter_rows(rows, needle), sort, order)[:limit]
        return _MARKET_DATA.dump_json(_MARKET_DATA.validate_python(
            {"data": rows, "next": None, "count": len(rows), "as_of": feed.updated_at, "plan": plan}), by_alias=True)


async def _views(request: Request) -> EncodedViews:
    state = request.app.state
    views: EncodedViews | None = getattr(state, "market_views", None)
    if views is None:
        views = state.market_views = EncodedViews()
    return views


@router.get("/data", response_model=MarketDataOut, responses=CALLER_REFUSALS)
async def market_data(
    request: Request,
    feed: Annotated[MarketFeed, Depends(_feed)],
    views: Annotated[EncodedViews, Depends(_views)],
    plan: Annotated[str | None, Depends(caller_plan)],
    sort: SortKey = SortKey.quoteVolume24h,
    order: SortOrder = SortOrder.desc,
    q: Annotated[str | None, Query(max_length=64, description="Symbol contains this (e.g. 'btc')")] = None,
    limit: Annotated[int | None, Query(ge=1, le=5000)] = None,
) -> Response:
    """The caller's plan's view of the table (Bearer token, API key or session cookie; anonymous: free): its top N
    symbols by 24h quote volume, then filtered, sorted and cut to `limit`; `openInterestUsd` is null on plans
    without the open-interest column. Served from bytes encoded once per change of the table (`EncodedViews`)."""
    key = (plan_of(plan).name, sort, order, normalize_symbol(q) if q else "", limit)
    return Response(await views.get(feed, key, request.app.state.runtime), media_type="application/json")


def _liquidation_columns(sums: dict[str, float] | None) -> dict[str, float]:
    sums = sums or {}
    return {f"liquidations{w}": sums.get(w, 0.0) for w in ("1h", "4h", "24h")}


def filter_rows(rows: list[dict[str, Any]], q: str | None) -> list[dict[str, Any]]:
    needle = normalize_symbol(q) if q else ""
    return [r for r in rows if needle in r["symbol"]] if needle else rows


def sort_rows(rows: list[dict[str, Any]], key: SortKey, order: SortOrder) -> list[dict[str, Any]]:
    """Sorted by `key`; rows without a value (no funding or OI yet) go last in either order."""
    known = [r for r in rows if r[key] is not None]
    unknown = [r for r in rows if r[key] is None]
    known.sort(key=lambda r: r[key], reverse=order is SortOrder.desc)
    return known + unknown


@router.get("/symbol/{symbol}", response_model=SymbolOut,
            responses={404: {"description": "Symbol not in the table"}, **CALLER_REFUSALS})
async def market_symbol(
    symbol: Annotated[Symbol, Path()], feed: Annotated[MarketFeed, Depends(_feed)],
    plan: Annotated[str | None, Depends(caller_plan)],
) -> dict[str, Any]:
    wanted = normalize_symbol(symbol)
    row = feed.get(wanted)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown symbol {wanted}")
    return {"data": tier_of(plan).row(row)}  # the open interest only for plans with its column


@router.get("/history/{symbol}", response_model=HistoryOut,
            responses={404: {"description": "Symbol neither in the table nor in the store"}})
async def market_history(
    request: Request,
    symbol: Annotated[Symbol, Path()],
    interval: Annotated[IntervalField, Query(description="Candle interval; unstored ones are built from 1m")] = (
        Interval.H1
    ),
    limit: Annotated[int, Query(ge=1, le=1500)] = 500,
    start: Annotated[EpochMs | None, Query(description="Open time ≥ this: ISO 8601 (UTC) or epoch ms")] = None,
    end: Annotated[EpochMs | None, Query(description="Open time < this: ISO 8601 (UTC) or epoch ms")] = None,
) -> dict[str, Any]:
    wanted = normalize_symbol(symbol)
    sessions = request.app.state.runtime.sessions
    candles = await load_candles(sessions, wanted, interval, start, end, limit)
    if not candles and market_feed(request).get(wanted) is None and not await has_candles(sessions, wanted):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown symbol {wanted}")
    return {"symbol": wanted, "interval": interval, "data": [candle_to_wire(c) for c in candles], "next": None}


def candle_to_wire(c: Candle) -> dict[str, Any]:
    return to_wire(c, omit=frozenset({"symbol", "interval"}))


# --- open interest ---------------------------------------------------------------------------------------------


class OpenInterestOut(BaseModel):
    model_config = WIRE_MODEL

    data: dict[str, float] = Field(description="USD notional (contracts × mark price) per normalized symbol; empty "
                                   "on plans without the open-interest column (free, anonymous)")
    plan: str = Field(description="The caller's plan (anonymous: free), which decides whether `data` is filled")
    as_of: int | None = Field(description="Newest data time held, epoch ms; null when nothing is cached")
    stale: bool = Field(description="Last refresh ≥ PULSE_OPEN_INTEREST_STALE_S ago (6 min); still served")
    dangerously_stale: bool = Field(description="Last refresh ≥ PULSE_OPEN_INTEREST_DANGEROUSLY_STALE_S ago (30 min)")


class OpenInterestIn(BaseModel):
    """The ingest body (documented here; parsed by hand so each bad value's error names its symbol)."""

    model_config = WIRE_MODEL

    data: dict[str, float] = Field(description='{"BTCUSDT": 12700000000.5, …}: finite, non-negative USD notional')
    as_of: int | None = Field(None, description="Epoch ms of the figures; default: now")


class IngestOut(BaseModel):
    model_config = WIRE_MODEL

    accepted: int
    as_of: int


@router.get("/open-interest", response_model=OpenInterestOut, tags=["open interest"], responses=CALLER_REFUSALS)
async def open_interest(request: Request, plan: Annotated[str | None, Depends(caller_plan)]) -> dict[str, Any]:
    """Served from memory whatever its age (stale-while-revalidate); the flags say how old it is. The figures
    follow the plan as `/data` does: plans without the open-interest column get no values, but the freshness
    (`asOf`, `stale`, `dangerouslyStale`) is still told, so a dashboard can say how old the column would be."""
    cache: OpenInterestCache = request.app.state.open_interest
    out = cache.snapshot().to_wire()
    if not tier_of(plan).open_interest:
        out["data"] = {}
    return {**out, "plan": plan_of(plan).name}


@router.post(
    "/open-interest/ingest",
    response_model=IngestOut,
    tags=["open interest"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"description": "Missing or wrong X-API-Key"}, 413: {"description": "Body over the limit"},
               422: {"description": "Invalid body; errors name each bad symbol"}},
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/json": {"schema": OpenInterestIn.model_json_schema()}}}},
)
async def ingest_open_interest(request: Request) -> dict[str, Any]:
    runtime = request.app.state.runtime
    try:
        values, as_of = parse_ingest_body(await read_limited_body(request), runtime.market_now_ms(),
                                          runtime.settings.ingest_time_window_s * 1000)
    except InvalidOpenInterest as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=exc.errors) from None
    # Stored before answering, so a 200 means durable; the store group will write the bus echo again, harmlessly
    # (newer-wins upsert of the same figures).
    await save_open_interest(runtime.sessions, values, as_of)
    request.app.state.open_interest.update(values, as_of)  # this process answers GETs with it at once
    # Every API process's cache, the table and the dashboards pick it up from the bus.
    await runtime.bus.publish(topics.MARKET_OPEN_INTEREST, topics.OpenInterestEvent(as_of, values))
    return {"accepted": len(values), "as_of": as_of}


class OpenInterestInterval(StrEnum):
    m5 = "5m"
    h1 = "1h"


class OpenInterestPointOut(BaseModel):
    time: int = Field(description="Start of the 5-minute snapshot or the hour, epoch ms")
    usd: float = Field(description="Open interest, USD notional (the bucket's last snapshot)")


class OpenInterestHistoryOut(Page[OpenInterestPointOut]):
    """`data`: oldest first; empty on plans without the open-interest column (free, anonymous)."""

    symbol: str
    interval: str
    plan: str = Field(description="The caller's plan (anonymous: free), which decides whether `data` is filled")


@router.get("/open-interest/history/{symbol}", response_model=OpenInterestHistoryOut, tags=["open interest"],
            responses={404: {"description": "Symbol neither in the table nor in the history"}, **CALLER_REFUSALS})
async def open_interest_history(
    request: Request,
    symbol: Annotated[Symbol, Path()],
    plan: Annotated[str | None, Depends(caller_plan)],
    interval: Annotated[OpenInterestInterval, Query(description="5m: every snapshot; 1h: each hour's last")] = (
        OpenInterestInterval.m5
    ),
    start: Annotated[EpochMs | None, Query(alias="from", description="Time ≥ this: ISO 8601 (UTC) or epoch ms")] = (
        None
    ),
    end: Annotated[EpochMs | None, Query(alias="to", description="Time < this: ISO 8601 (UTC) or epoch ms")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """The 5-minute open-interest snapshots (kept for PULSE_RETENTION_DAYS), at 5m or hourly (each hour's last).
    The figures follow the plan as `/data` and `/open-interest` do: none without the open-interest column."""
    runtime = request.app.state.runtime
    wanted = normalize_symbol(symbol)
    step = Interval.parse(interval.value).ms
    points = await load_open_interest_history(runtime.sessions, wanted, step, start, end, limit)
    if not points and market_feed(request).get(wanted) is None and not await has_open_interest_history(
            runtime.sessions, wanted):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown symbol {wanted}")
    shown = points if tier_of(plan).open_interest else []
    return {"symbol": wanted, "interval": interval.value, "data": [{"time": t, "usd": u} for t, u in shown],
            "next": None, "plan": plan_of(plan).name}


# --- liquidations ----------------------------------------------------------------------------------------------


class LiquidationOut(BaseModel):
    symbol: str
    side: str = Field(description="The position liquidated: long (the exchange sold it) or short (bought back)")
    price: float = Field(description="Average fill price")
    quantity: float = Field(description="Base units")
    usd: float = Field(description="USD value: price × quantity")
    time: int = Field(description="Trade time, epoch ms (market time)")


class LiquidationsOut(Page[LiquidationOut]):
    """`data`: newest first. `next`: pass as `cursor` for the older ones."""


@router.get("/liquidations", response_model=LiquidationsOut, tags=["liquidations"],
            responses={404: {"description": "Symbol neither in the table nor in the stored liquidations"}})
async def liquidations(
    request: Request,
    symbol: Annotated[Symbol | None, Query(description="One symbol (BTCUSDT); default: every symbol")] = None,
    start: Annotated[EpochMs | None, Query(alias="from", description="Time ≥ this: ISO 8601 (UTC) or epoch ms")] = (
        None
    ),
    end: Annotated[EpochMs | None, Query(alias="to", description="Time < this: ISO 8601 (UTC) or epoch ms")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,15}$",
                                        description="a previous page's `next`: only liquidations before it")] = None,
) -> dict[str, Any]:
    """Forced liquidations (Binance's `!forceOrder@arr`; synthesized from the candles by the replay), kept for
    PULSE_RETENTION_DAYS."""
    runtime = request.app.state.runtime
    wanted = normalize_symbol(symbol) if symbol else None
    before = int(cursor) if cursor is not None else None
    upper = before if end is None else (end if before is None else min(end, before))
    rows = await load_liquidations(runtime.sessions, wanted, start, upper, limit + 1)
    if wanted and not rows and market_feed(request).get(wanted) is None and not await has_liquidations(
            runtime.sessions, wanted):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown symbol {wanted}")
    more = len(rows) > limit
    rows = rows[:limit]
    # Rows sharing the last row's millisecond would straddle a time cursor: stop the page before them instead.
    next_cursor = None
    if more:
        last = rows[-1]["time"]
        kept = [r for r in rows if r["time"] > last]
        if kept:
            rows, next_cursor = kept, str(last + 1)
        else:
            next_cursor = str(last)  # a whole page in one millisecond: move on past it
    return {"data": rows, "next": next_cursor}
