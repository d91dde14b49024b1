"""Liquidations over HTTP and Socket.IO: stored from the bus by the recorder, listed with symbol/from/to in the one
list envelope (newest first, paged by cursor), summed per symbol over 1h/4h/24h in the market table, pruned with
the market data, an unknown symbol a 404, and each bus batch pushed to browsers as a `liquidations` event."""

from __future__ import annotations

import httpx
import pytest

from marketpulse.bus import topics
from marketpulse.bus.topics import LiquidationsEvent
from marketpulse.marketdata.liquidations import save_liquidations, sums_of
from marketpulse.marketdata.models import Liquidation
from marketpulse.marketdata.store import MarketRecorder, prune
from marketpulse.runtime import Runtime

from .serving import eventually

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_760_130_000_000  # 2025-10-10 21:00 UTC, the cascade hour


def liq(symbol: str, side: str, usd: float, t: int, price: float = 100.0) -> Liquidation:
    return Liquidation(symbol, side, price, usd / price, usd, t)


async def test_the_recorder_stores_what_the_bus_carries_once_however_often_it_comes(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    recorder = MarketRecorder(runtime)
    await recorder.start()
    try:
        batch = LiquidationsEvent([liq("BTCUSDT", "long", 50_000.0, T0 + 1_000, 110_000.0),
                                   liq("ETHUSDT", "short", 8_000.0, T0 + 2_000, 3_900.0)])
        await runtime.bus.publish(topics.MARKET_LIQUIDATIONS, batch)
        await runtime.bus.publish(topics.MARKET_LIQUIDATIONS, batch)  # a redelivery, or a replay of the same minute

        async def stored() -> bool:
            return len((await client.get("/api/v1/market/liquidations")).json()["data"]) >= 2

        await eventually(stored)
    finally:
        await recorder.stop()
    body = (await client.get("/api/v1/market/liquidations")).json()
    assert body == {"data": [
        {"symbol": "ETHUSDT", "side": "short", "price": 3_900.0, "quantity": 8_000.0 / 3_900.0, "usd": 8_000.0,
         "time": T0 + 2_000},
        {"symbol": "BTCUSDT", "side": "long", "price": 110_000.0, "quantity": 50_000.0 / 110_000.0,
         "usd": 50_000.0, "time": T0 + 1_000},
    ], "next": None}


async def test_symbol_from_to_and_paging(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await save_liquidations(runtime.sessions, "replay", [liq("BTCUSDT", "long", 1_000.0 * (i + 1), T0 + i * MIN)
                                                         for i in range(10)])
    await save_liquidations(runtime.sessions, "replay", [liq("ETHUSDT", "short", 5.0, T0 + 30_000)])
    btc = (await client.get("/api/v1/market/liquidations", params={"symbol": "btc-usdt"})).json()
    assert [x["time"] for x in btc["data"]] == [T0 + i * MIN for i in reversed(range(10))]
    window = (await client.get("/api/v1/market/liquidations", params={
        "symbol": "BTCUSDT", "from": "2025-10-10T21:02:00Z", "to": T0 + 5 * MIN})).json()
    assert [x["usd"] for x in window["data"]] == [5_000.0, 4_000.0, 3_000.0]
    seen, cursor = [], None
    while True:
        page = (await client.get("/api/v1/market/liquidations", params={
            "symbol": "BTCUSDT", "limit": 4, **({"cursor": cursor} if cursor else {})})).json()
        seen += [x["time"] for x in page["data"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [T0 + i * MIN for i in reversed(range(10))]  # every one once, newest first
    everyone = (await client.get("/api/v1/market/liquidations", params={"to": T0 + MIN})).json()
    assert {x["symbol"] for x in everyone["data"]} == {"BTCUSDT", "ETHUSDT"}


async def test_unknown_symbol_is_404_and_bad_input_422_naming_the_field(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/market/liquidations", params={"symbol": "FOOUSDT"})
    assert r.status_code == 404 and "FOOUSDT" in r.json()["detail"]
    for params, field in (({"from": "yesterday"}, "from"), ({"limit": 0}, "limit"), ({"cursor": "abc"}, "cursor")):
        r = await client.get("/api/v1/market/liquidations", params=params)
        assert r.status_code == 422 and field in r.text, (params, r.text)


async def test_market_table_sums_each_symbols_liquidations_over_1h_4h_24h(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    now = T0 + 30 * MIN
    await save_liquidations(runtime.sessions, "replay", [
        liq("BTCUSDT", "long", 100.0, now - 10 * MIN), liq("BTCUSDT", "short", 20.0, now - 59 * MIN),
        liq("BTCUSDT", "long", 3.0, now - 2 * HOUR), liq("BTCUSDT", "long", 0.5, now - 5 * HOUR),
        liq("BTCUSDT", "long", 99_999.0, now - 25 * HOUR),  # beyond 24 h
        liq("ETHUSDT", "long", 7.0, now - 3 * HOUR),
    ])
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": now, "rows": [
        {"symbol": s, "time": now, "price": 1.0, "change_pct_24h": 0.0, "quote_volume_24h": v}
        for s, v in (("BTCUSDT", 9e9), ("ETHUSDT", 5e9), ("SOLUSDT", 1e9))]})

    async def table() -> bool:
        return len((await client.get("/api/v1/market/data")).json()["data"]) == 3

    await eventually(table)
    rows = {r["symbol"]: r for r in (await client.get("/api/v1/market/data")).json()["data"]}
    assert (rows["BTCUSDT"]["liquidations1h"], rows["BTCUSDT"]["liquidations4h"],
            rows["BTCUSDT"]["liquidations24h"]) == (120.0, 123.0, 123.5)
    assert (rows["ETHUSDT"]["liquidations1h"], rows["ETHUSDT"]["liquidations4h"]) == (0.0, 7.0)
    assert rows["SOLUSDT"]["liquidations24h"] == 0.0
    ranked = (await client.get("/api/v1/market/data", params={"sort": "liquidations4h", "order": "desc"})).json()
    assert [r["symbol"] for r in ranked["data"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    # the SQL sums agree with their in-memory specification
    rows_in = [("BTCUSDT", now - 10 * MIN, 100.0), ("BTCUSDT", now - 59 * MIN, 20.0),
               ("BTCUSDT", now - 2 * HOUR, 3.0), ("BTCUSDT", now - 5 * HOUR, 0.5),
               ("BTCUSDT", now - 25 * HOUR, 99_999.0), ("ETHUSDT", now - 3 * HOUR, 7.0)]
    assert sums_of(rows_in, now) == {"BTCUSDT": {"1h": 120.0, "4h": 123.0, "24h": 123.5},
                                     "ETHUSDT": {"1h": 0.0, "4h": 7.0, "24h": 7.0}}


async def test_liquidations_are_pruned_with_the_market_data(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await save_liquidations(runtime.sessions, "replay", [liq("BTCUSDT", "long", 1.0, T0 - 31 * DAY),
                                                         liq("BTCUSDT", "long", 2.0, T0 - 29 * DAY)])
    await prune(runtime.sessions, T0, runtime.settings.retention_days)  # the 30-day default
    body = (await client.get("/api/v1/market/liquidations", params={"symbol": "BTCUSDT"})).json()
    assert [x["usd"] for x in body["data"]] == [2.0]


@pytest.mark.usefixtures("client")
async def test_sums_of_ignores_the_future(runtime: Runtime) -> None:
    assert sums_of([("BTCUSDT", T0 + 1, 5.0)], T0) == {}
