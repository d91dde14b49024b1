"""`GET /api/v1/market/data` answers from bytes encoded once per view and per change of the table: a change is
seen at once, each plan's view stays its own, and the bytes are what the documented response model gives."""

from __future__ import annotations

import httpx
import orjson

from marketpulse.bus import topics
from marketpulse.marketdata.models import MarketRow
from marketpulse.marketdata.views import EncodedViews, MarketDataOut, SortKey, SortOrder
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.runtime import Runtime
from support.accounts import token_on_plan

from .serving import eventually
from .test_market import T0, bearer, row, table  # noqa: F401  (the fixture)


def market_row(symbol: str, volume: float, price: float = 1.0, oi: float | None = None) -> MarketRow:
    return MarketRow(symbol=symbol, time=T0, price=price, change_pct_24h=0.5, quote_volume_24h=volume,
                     open_interest_usd=oi)


async def test_a_view_is_encoded_once_per_version_and_again_after_a_change(runtime: Runtime) -> None:
    feed = MarketFeed()
    feed.apply_rows([market_row("BTCUSDT", 2e9, 60_000), market_row("ETHUSDT", 1e9, 2_400)])
    views = EncodedViews()
    key = ("elite", SortKey.quoteVolume24h, SortOrder.desc, "", None)
    first = await views.get(feed, key, runtime)
    assert await views.get(feed, key, runtime) is first  # served from the cache, not re-encoded
    feed.apply_rows([market_row("BTCUSDT", 2e9, 61_000)])
    after = orjson.loads(await views.get(feed, key, runtime))
    assert after["data"][0]["price"] == 61_000
    feed.apply_open_interest({"ETHUSDT": 5e8})
    assert orjson.loads(await views.get(feed, key, runtime))["data"][1]["openInterestUsd"] == 5e8


async def test_each_plan_view_is_its_own_and_matches_the_response_model(runtime: Runtime) -> None:
    feed = MarketFeed()
    feed.apply_rows([market_row(f"S{i:03d}USDT", 1e6 * (i + 1), price=i + 1.0, oi=1e5) for i in range(120)])
    views = EncodedViews()
    free = orjson.loads(await views.get(feed, ("free", SortKey.quoteVolume24h, SortOrder.desc, "", None), runtime))
    elite = orjson.loads(await views.get(feed, ("elite", SortKey.quoteVolume24h, SortOrder.desc, "", None), runtime))
    assert free["count"] < elite["count"] == 120
    assert {r["openInterestUsd"] for r in free["data"]} == {None}
    assert {r["openInterestUsd"] for r in elite["data"]} == {1e5}
    # the bytes validate against the documented model and round-trip unchanged
    assert MarketDataOut.model_validate(elite).model_dump(by_alias=True) == elite
    price_sorted = orjson.loads(await views.get(feed, ("elite", SortKey.price, SortOrder.asc, "S00", 3), runtime))
    assert [r["symbol"] for r in price_sorted["data"]] == ["S000USDT", "S001USDT", "S002USDT"]


async def test_views_kept_per_version_are_bounded(runtime: Runtime) -> None:
    feed = MarketFeed()
    feed.apply_rows([market_row("BTCUSDT", 1e9)])
    views = EncodedViews()
    for i in range(EncodedViews.MAX_VIEWS + 50):
        await views.get(feed, ("elite", SortKey.symbol, SortOrder.asc, f"X{i}", None), runtime)
    assert len(views._views) == EncodedViews.MAX_VIEWS


async def test_a_plan_never_gets_another_plans_cached_view(client: httpx.AsyncClient, runtime: Runtime,
                                                           table: None) -> None:  # noqa: F811
    anonymous = (await client.get("/api/v1/market/data")).json()  # encodes the free view first
    elite = (await client.get("/api/v1/market/data", headers=bearer(await token_on_plan(runtime, "elite")))).json()
    assert anonymous["plan"] == "free" and elite["plan"] == "elite"
    assert {r["openInterestUsd"] for r in anonymous["data"]} == {None}
    assert (await client.get("/api/v1/market/data")).json() == anonymous
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0 + 1, "rows": [row("BTCUSDT", 1.0, 0.0, 20e9)]})

    async def changed() -> bool:
        return bool((await client.get("/api/v1/market/data")).json()["data"][0]["price"] == 1.0)

    await eventually(changed)
