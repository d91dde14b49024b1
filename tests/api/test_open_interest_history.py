"""GET /api/v1/market/open-interest/history/{symbol}: the 5-minute snapshots, hourly buckets, from/to, retention,
figures only on plans with the open-interest column, and a 404 for a symbol nobody knows."""

from __future__ import annotations

import httpx

from marketpulse.marketdata.open_interest import save_open_interest
from marketpulse.marketdata.store import prune
from marketpulse.runtime import Runtime
from support.accounts import token_on_plan

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC


async def elite(client: httpx.AsyncClient, runtime: Runtime) -> httpx.AsyncClient:
    """`client` as a user whose plan shows the open-interest column."""
    client.headers["Authorization"] = f"Bearer {await token_on_plan(runtime, 'elite')}"
    return client


async def snapshots(runtime: Runtime) -> None:
    """Every 5 minutes from T0 - 2h to T0 (exclusive): BTC's figure is 1000 + minutes since T0 - 2h."""
    for i in range(24):
        t = T0 - 2 * HOUR + i * 5 * MIN + 7_000  # the refresher's time lands a few seconds into its slot
        await save_open_interest(runtime.sessions, {"BTCUSDT": 1000.0 + 5 * i}, t)


async def test_five_minute_snapshots_and_hourly_buckets(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await snapshots(runtime)
    client = await elite(client, runtime)
    five = (await client.get("/api/v1/market/open-interest/history/btcusdt")).json()
    assert five["symbol"] == "BTCUSDT" and five["interval"] == "5m"
    assert [p["time"] for p in five["data"]] == [T0 - 2 * HOUR + i * 5 * MIN for i in range(24)]
    assert five["data"][0]["usd"] == 1000.0 and five["data"][-1]["usd"] == 1115.0
    hourly = (await client.get("/api/v1/market/open-interest/history/BTCUSDT", params={"interval": "1h"})).json()
    # each hour's last snapshot (xx:55): 1000 + 55 and 1000 + 115
    assert hourly["data"] == [{"time": T0 - 2 * HOUR, "usd": 1055.0}, {"time": T0 - HOUR, "usd": 1115.0}]
    window = (await client.get("/api/v1/market/open-interest/history/BTCUSDT", params={
        "from": "2025-10-10T19:00:00Z", "to": T0 - HOUR + 15 * MIN})).json()
    assert [p["usd"] for p in window["data"]] == [1060.0, 1065.0, 1070.0]


async def test_an_older_figure_never_replaces_a_newer_one_in_its_snapshot(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    client = await elite(client, runtime)
    await save_open_interest(runtime.sessions, {"BTCUSDT": 2.0}, T0 + 60_000)
    await save_open_interest(runtime.sessions, {"BTCUSDT": 1.0}, T0 + 30_000)  # a redelivered older message
    data = (await client.get("/api/v1/market/open-interest/history/BTCUSDT")).json()["data"]
    assert data == [{"time": T0, "usd": 2.0}]


async def test_history_is_pruned_with_the_market_data(client: httpx.AsyncClient, runtime: Runtime) -> None:
    client = await elite(client, runtime)
    await save_open_interest(runtime.sessions, {"BTCUSDT": 1.0}, T0 - 31 * DAY)
    await save_open_interest(runtime.sessions, {"BTCUSDT": 2.0}, T0 - 29 * DAY)
    await prune(runtime.sessions, T0, runtime.settings.retention_days)  # the 30-day default
    data = (await client.get("/api/v1/market/open-interest/history/BTCUSDT")).json()["data"]
    assert [p["usd"] for p in data] == [2.0]


async def test_unknown_symbol_is_a_404_and_bad_interval_a_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/market/open-interest/history/FOOUSDT")
    assert r.status_code == 404 and "FOOUSDT" in r.json()["detail"]
    r = await client.get("/api/v1/market/open-interest/history/FOOUSDT", params={"interval": "15m"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "interval"]


async def test_free_and_anonymous_callers_get_no_figures(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await snapshots(runtime)
    anonymous = (await client.get("/api/v1/market/open-interest/history/BTCUSDT")).json()
    assert anonymous["data"] == [] and anonymous["plan"] == "free"
    free = await client.get("/api/v1/market/open-interest/history/BTCUSDT",
                            headers={"Authorization": f"Bearer {await token_on_plan(runtime, 'free')}"})
    assert free.json()["data"] == []
