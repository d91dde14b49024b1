"""Market endpoints: the live table (fed from the bus), one symbol, candle history from the store."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from marketpulse.bus import topics
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import save_candles
from marketpulse.runtime import Runtime
from support.accounts import token_on_plan

from .serving import eventually

HOUR = 3_600_000
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC


def row(symbol: str, price: float, change: float, volume: float, funding: float | None = None, **extra: Any) -> dict:
    return {"symbol": symbol, "time": T0, "price": price, "change_pct_24h": change, "quote_volume_24h": volume,
            "funding_rate": funding, **extra}


async def until_count(client: httpx.AsyncClient, n: int) -> None:
    async def enough() -> bool:
        return bool((await client.get("/api/v1/market/data")).json()["count"] >= n)

    await eventually(enough)


@pytest.fixture
async def table(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [
        row("BTCUSDT", 60_000.5, 2.31, 12.7e9, 0.0001, price_precision=1),
        row("ETHUSDT", 2_400.25, -1.5, 8.5e9, -0.00005),
        row("PEPEUSDT", 0.00001234, 12.0, 3.4e6),  # no funding yet
    ]})
    await until_count(client, 3)


async def test_table_defaults_to_volume_descending(client: httpx.AsyncClient, table: None) -> None:
    body = (await client.get("/api/v1/market/data")).json()
    assert [r["symbol"] for r in body["data"]] == ["BTCUSDT", "ETHUSDT", "PEPEUSDT"]
    assert body["asOf"] == T0
    assert body["data"][0] == {"symbol": "BTCUSDT", "time": T0, "price": 60_000.5, "changePct24h": 2.31,
                               "quoteVolume24h": 12.7e9, "fundingRate": 0.0001, "openInterestUsd": None,
                               "pricePrecision": 1, "liquidations1h": 0.0, "liquidations4h": 0.0,
                               "liquidations24h": 0.0, "changePct1h": None, "changePct4h": None,
                               "openInterestChange1h": None, "openInterestChange4h": None,
                               "openInterestChange24h": None, "nextFundingTime": T0 + 4 * HOUR}
    assert body["next"] is None  # the one list envelope: {data, next}


async def test_sort_order_and_filter(client: httpx.AsyncClient, table: None) -> None:
    asc = (await client.get("/api/v1/market/data", params={"sort": "changePct24h", "order": "asc"})).json()
    assert [r["symbol"] for r in asc["data"]] == ["ETHUSDT", "BTCUSDT", "PEPEUSDT"]
    # a row without funding goes last whichever the order
    for order in ("asc", "desc"):
        got = (await client.get("/api/v1/market/data", params={"sort": "fundingRate", "order": order})).json()
        assert got["data"][-1]["symbol"] == "PEPEUSDT"
    eth = (await client.get("/api/v1/market/data", params={"q": "eth-"})).json()
    assert [r["symbol"] for r in eth["data"]] == ["ETHUSDT"] and eth["count"] == 1


async def test_unknown_sort_key_is_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/market/data", params={"sort": "price; DROP TABLE"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "sort"]


async def test_later_rows_update_in_place_and_keep_what_they_do_not_carry(
    client: httpx.AsyncClient, runtime: Runtime, table: None
) -> None:
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0 + 1000, "rows": [row("BTCUSDT", 61_000.0, 3.0, 13e9)]})

    async def updated() -> dict[str, Any] | None:
        got: dict[str, Any] = (await client.get("/api/v1/market/symbol/BTCUSDT")).json()["data"]
        return got if got["price"] == 61_000.0 else None

    btc = await eventually(updated)
    assert btc["fundingRate"] == 0.0001 and btc["pricePrecision"] == 1  # not in this row: kept
    assert (await client.get("/api/v1/market/data")).json()["count"] == 3


async def test_a_malformed_row_does_not_sink_its_batch(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [
        {"symbol": "BADUSDT", "price": "lots"}, row("SOLUSDT", 150.0, 1.0, 2e9)]})
    await until_count(client, 1)
    assert [r["symbol"] for r in (await client.get("/api/v1/market/data")).json()["data"]] == ["SOLUSDT"]


async def test_symbol_is_normalized_and_unknown_is_404_naming_it(client: httpx.AsyncClient, table: None) -> None:
    r = await client.get("/api/v1/market/symbol/btc-usdt")
    assert r.status_code == 200 and r.json()["data"]["symbol"] == "BTCUSDT"
    r = await client.get("/api/v1/market/symbol/nope_usdt")
    assert r.status_code == 404 and "NOPEUSDT" in r.json()["detail"]


async def test_history_serves_stored_candles_oldest_first(client: httpx.AsyncClient, runtime: Runtime) -> None:
    candles = [Candle("BTCUSDT", "1h", T0 + i * HOUR, 100 + i, 110 + i, 90 + i, 105 + i, 10.0, 1_000.0 * (i + 1))
               for i in range(5)]
    await save_candles(runtime.sessions, "replay", candles)

    body = (await client.get("/api/v1/market/history/btc_usdt", params={"interval": "1h"})).json()
    assert body["symbol"] == "BTCUSDT" and body["interval"] == "1h"
    assert [c["openTime"] for c in body["data"]] == [T0 + i * HOUR for i in range(5)]
    assert body["next"] is None
    assert body["data"][0] == {"openTime": T0, "open": 100, "high": 110, "low": 90, "close": 105,
                                  "volume": 10.0, "quoteVolume": 1_000.0, "closed": True}

    newest = (await client.get("/api/v1/market/history/BTCUSDT", params={"interval": "1h", "limit": 2})).json()
    assert [c["openTime"] for c in newest["data"]] == [T0 + 3 * HOUR, T0 + 4 * HOUR]

    # a known symbol with nothing in the window: an empty page; a symbol nobody knows: 404, as /symbol says
    empty = (await client.get("/api/v1/market/history/BTCUSDT", params={"interval": "1h", "end": T0})).json()
    assert empty["data"] == []
    unknown = await client.get("/api/v1/market/history/FOOUSDT", params={"interval": "1h"})
    assert unknown.status_code == 404 and "FOOUSDT" in unknown.json()["detail"]


@pytest.mark.parametrize("interval", ["1M", "fortnight", "0m"])
async def test_history_rejects_unsupported_interval(client: httpx.AsyncClient, interval: str) -> None:
    r = await client.get("/api/v1/market/history/BTCUSDT", params={"interval": interval})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "interval"]


# --- per plan ---------------------------------------------------------------------------------------------------


@pytest.fixture
async def wide_table(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """120 symbols, S000USDT the largest by volume, each with open interest."""
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [
        row(f"S{i:03d}USDT", 1.0 + i, 0.5, 1e9 - i * 1e6, open_interest_usd=5e6 + i) for i in range(120)]})

    async def full() -> bool:
        response = await client.get("/api/v1/market/data", headers=bearer(await token_on_plan(runtime, "elite")))
        return bool(response.json()["count"] == 120)

    await eventually(full)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_anonymous_callers_get_the_free_view_top_50_by_volume_without_open_interest(
        client: httpx.AsyncClient, wide_table: None) -> None:
    body = (await client.get("/api/v1/market/data", params={"sort": "symbol", "order": "desc"})).json()
    assert body["plan"] == "free" and body["count"] == 50
    assert {r["symbol"] for r in body["data"]} == {f"S{i:03d}USDT" for i in range(50)}  # the top 50, then sorted
    assert body["data"][0]["symbol"] == "S049USDT"
    assert {r["openInterestUsd"] for r in body["data"]} == {None}
    one = (await client.get("/api/v1/market/symbol/S001USDT")).json()["data"]
    assert one["openInterestUsd"] is None


async def test_each_plan_gets_its_symbol_count_and_pro_and_up_the_open_interest(
        client: httpx.AsyncClient, runtime: Runtime, wide_table: None) -> None:
    for plan, count in (("pro", 100), ("elite", 120), ("enterprise", 120)):
        body = (await client.get("/api/v1/market/data", headers=bearer(await token_on_plan(runtime, plan)))).json()
        assert (body["plan"], body["count"]) == (plan, count)
        assert body["data"][0] == {**body["data"][0], "symbol": "S000USDT", "openInterestUsd": 5e6}
    # The browser's session cookie counts too (a read needs no CSRF header), and a personal API key.
    client.cookies.set("mp_access", await token_on_plan(runtime, "pro"))
    try:
        assert (await client.get("/api/v1/market/data")).json()["count"] == 100
    finally:
        client.cookies.clear()


async def test_a_bad_bearer_token_is_refused_but_a_stale_cookie_is_the_free_view(
        client: httpx.AsyncClient, wide_table: None) -> None:
    assert (await client.get("/api/v1/market/data", headers=bearer("not-a-token"))).status_code == 401
    client.cookies.set("mp_access", "not-a-token")
    try:
        body = (await client.get("/api/v1/market/data")).json()
    finally:
        client.cookies.clear()
    assert (body["plan"], body["count"]) == ("free", 50)


async def test_an_api_key_reads_with_its_users_plan(
        client: httpx.AsyncClient, runtime: Runtime, wide_table: None) -> None:
    from marketpulse.accounts.api_keys import Scope

    accounts = runtime.services.accounts
    user = await accounts.create_user("keys@example.com", None, plan="pro", verified=True)
    _, read_key = await accounts.api_keys.create(user.id, "reader", [Scope("read")])
    _, trade_key = await accounts.api_keys.create(user.id, "trader", [Scope("trade")])
    assert (await client.get("/api/v1/market/data", headers=bearer(read_key))).json()["count"] == 100
    assert (await client.get("/api/v1/market/data", headers=bearer(trade_key))).status_code == 403


async def test_change_columns_compare_with_the_stored_past(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """1h/4h price change against the minute that closed then, OI change against the 5-minute snapshot then, the
    next funding at 00/08/16 UTC; null where nothing is stored (and OI change only with the OI column); sortable."""
    from marketpulse.marketdata.open_interest import save_open_interest

    now = T0 + 30 * 60_000  # 20:30
    minute = 60_000
    await save_candles(runtime.sessions, "replay", [
        Candle("BTCUSDT", "1m", now - HOUR - minute, 100.0, 100.0, 100.0, 100.0, 1, 1),  # closed at 19:30
        Candle("BTCUSDT", "1m", now - 4 * HOUR - minute, 125.0, 125.0, 125.0, 125.0, 1, 1),  # closed at 16:30
        Candle("ETHUSDT", "1m", now - HOUR - minute, 50.0, 50.0, 50.0, 50.0, 1, 1)])
    await save_open_interest(runtime.sessions, {"BTCUSDT": 800.0}, now - HOUR + 10_000)
    await save_open_interest(runtime.sessions, {"BTCUSDT": 1_000.0}, now - 24 * HOUR - 5 * minute)  # the slot before
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": now, "rows": [
        {**row("BTCUSDT", 110.0, 1.0, 9e9, open_interest_usd=1_200.0), "time": now},
        {**row("ETHUSDT", 40.0, 1.0, 5e9), "time": now}]})
    client.headers["Authorization"] = f"Bearer {await token_on_plan(runtime, 'elite')}"

    async def ready() -> bool:
        return len((await client.get("/api/v1/market/data")).json()["data"]) == 2

    await eventually(ready)
    rows = {r["symbol"]: r for r in (await client.get("/api/v1/market/data")).json()["data"]}
    btc, eth = rows["BTCUSDT"], rows["ETHUSDT"]
    assert (btc["changePct1h"], btc["changePct4h"]) == (10.0, -12.0)
    assert (btc["openInterestChange1h"], btc["openInterestChange4h"], btc["openInterestChange24h"]) == (
        50.0, None, 20.0)
    assert (eth["changePct1h"], eth["changePct4h"], eth["openInterestChange1h"]) == (-20.0, None, None)
    assert btc["nextFundingTime"] == T0 + 4 * HOUR  # 2025-10-11 00:00 UTC
    ranked = (await client.get("/api/v1/market/data", params={"sort": "changePct1h", "order": "asc"})).json()
    assert [r["symbol"] for r in ranked["data"]] == ["ETHUSDT", "BTCUSDT"]
    del client.headers["Authorization"]
    free = {r["symbol"]: r for r in (await client.get("/api/v1/market/data")).json()["data"]}
    assert free["BTCUSDT"]["openInterestChange1h"] is None and free["BTCUSDT"]["changePct1h"] == 10.0
