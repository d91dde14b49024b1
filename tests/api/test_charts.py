"""GET /api/v1/charts/{symbol}: candles from the candle library and the store merged, studies computed server-side,
bad studies a 422 naming the field, an unknown symbol a 404; and the symbol page is served."""

from __future__ import annotations

import httpx
import numpy as np

from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.library import CandleLibrary
from marketpulse.marketdata.models import Candle, MarketRow
from marketpulse.marketdata.store import save_candles, save_snapshots
from marketpulse.runtime import Runtime

HOUR = 3_600_000
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC, the clock fixture's now


def library_hours(runtime: Runtime, symbol: str, first: int, n: int, exchange: str = "binance_swap",
                  start: float = 100.0) -> None:
    """n hourly candles in the library opening at `first`, closes `start`, `start` + 1, …"""
    close = start + np.arange(n, dtype=np.float64)
    frame = CandleFrame(first + np.arange(n, dtype=np.int64) * HOUR, close - 0.5, close + 1, close - 1, close,
                        np.full(n, 10.0), symbol, "1h")
    CandleLibrary(runtime.settings.data_dir / "library").append(exchange, symbol, "1h", frame)


async def test_library_history_and_the_store_are_merged_with_the_store_winning(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    library_hours(runtime, "BTCUSDT", T0 - 168 * HOUR, 166)  # a week, up to 2 hours ago
    await save_candles(runtime.sessions, "binance", [  # the store's newest two hours; one overlaps the library
        Candle("BTCUSDT", "1h", T0 - 3 * HOUR, 1, 2, 0.5, 1.5, 7, 70),
        Candle("BTCUSDT", "1h", T0 - 2 * HOUR, 1, 2, 0.5, 1.6, 7, 70),
        Candle("BTCUSDT", "1h", T0 - HOUR, 1, 2, 0.5, 1.7, 7, 70)])
    r = await client.get("/api/v1/charts/btc-usdt", params={"interval": "1h", "limit": 1000})
    assert r.status_code == 200, r.text
    body = r.json()
    times = [c["openTime"] for c in body["candles"]]
    assert times == [T0 - 168 * HOUR + i * HOUR for i in range(168)]  # 165 from the library + 3 from the store
    assert body["sources"] == {"store": 3, "library": 165}
    assert body["candles"][-3]["close"] == 1.5  # the store's figure where both hold the hour
    assert body["candles"][0]["close"] == 100.0


async def test_studies_are_computed_over_the_candles(client: httpx.AsyncClient, runtime: Runtime) -> None:
    library_hours(runtime, "ETHUSDT", T0 - 40 * HOUR, 40)
    r = await client.get("/api/v1/charts/ETHUSDT", params={"studies": "sma:3,rsi,bb:5:2,utbot,macd"})
    assert r.status_code == 200, r.text
    studies = {s["id"]: s for s in r.json()["studies"]}
    assert list(studies) == ["sma:3", "rsi:14", "bb:5:2", "utbot:1:10", "macd:12:26:9"]
    sma = studies["sma:3"]["lines"][0]["points"]
    assert sma[0] == [T0 - 40 * HOUR, None] and sma[1][1] is None  # warming up
    assert sma[2] == [T0 - 38 * HOUR, 101.0]  # (100 + 101 + 102) / 3
    assert studies["rsi:14"]["pane"] == "rsi" and studies["sma:3"]["pane"] == "price"
    assert studies["rsi:14"]["lines"][0]["points"][-1][1] == 100.0  # every close higher than the last
    assert [line["name"] for line in studies["bb:5:2"]["lines"]] == ["upper", "middle", "lower"]
    assert [line["name"] for line in studies["macd:12:26:9"]["lines"]] == ["macd", "signal", "histogram"]


async def test_bad_studies_are_a_422_naming_the_field(client: httpx.AsyncClient, runtime: Runtime) -> None:
    library_hours(runtime, "ETHUSDT", T0 - 10 * HOUR, 10)
    for bad in ("wma:3", "ema:0", "ema:2.5", "bb:20:-1", "ema:x", "ema:1:2"):
        r = await client.get("/api/v1/charts/ETHUSDT", params={"studies": bad})
        assert r.status_code == 422, bad
        assert r.json()["detail"][0]["loc"] == ["query", "studies"], bad


async def test_unknown_symbol_is_a_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/charts/FOOUSDT")
    assert r.status_code == 404 and "FOOUSDT" in r.json()["detail"]


async def test_the_symbol_page_loads_the_chart_library_and_its_script(client: httpx.AsyncClient) -> None:
    r = await client.get("/market/btc-usdt")
    assert r.status_code == 200
    assert 'data-symbol="BTCUSDT"' in r.text
    assert '<script src="/vendor/lightweight-charts.js">' in r.text and "/static/symbol.js" in r.text
    assert "<script>" not in r.text  # nothing inline (CSP)


async def test_coarser_intervals_are_built_from_stored_hours(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await save_candles(runtime.sessions, "binance", [
        Candle("SOLUSDT", "1h", T0 - (8 - i) * HOUR, 10 + i, 20 + i, 5 + i, 11 + i, 1, 10) for i in range(8)])
    body = (await client.get("/api/v1/charts/SOLUSDT", params={"interval": "4h"})).json()
    assert [(c["openTime"], c["open"], c["high"], c["low"], c["close"], c["volume"]) for c in body["candles"]] == [
        (T0 - 8 * HOUR, 10, 23, 5, 14, 4), (T0 - 4 * HOUR, 14, 27, 9, 18, 4)]
    assert body["sources"] == {"store": 2, "library": 0}


async def test_the_perpetuals_library_comes_before_spot_and_spot_fills_in(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    library_hours(runtime, "BTCUSDT", T0 - 10 * HOUR, 10, exchange="binance", start=500.0)  # spot
    library_hours(runtime, "BTCUSDT", T0 - 10 * HOUR, 10, exchange="binance_swap", start=100.0)  # perpetual
    library_hours(runtime, "DOGEUSDT", T0 - 10 * HOUR, 10, exchange="binance", start=7.0)  # spot only
    btc = (await client.get("/api/v1/charts/BTCUSDT")).json()["candles"]
    doge = (await client.get("/api/v1/charts/DOGEUSDT")).json()["candles"]
    assert [c["close"] for c in btc][:2] == [100.0, 101.0]
    assert [c["close"] for c in doge][:2] == [7.0, 8.0]


async def test_funding_history_comes_from_the_snapshots_last_rate_per_candle(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    library_hours(runtime, "SOLUSDT", T0 - 3 * HOUR, 3)
    for minute, rate in ((0, 0.0001), (30, 0.0002), (70, None), (130, -0.0001)):  # minutes after T0 - 3h
        await save_snapshots(runtime.sessions, T0 - 3 * HOUR + minute * 60_000, [
            MarketRow("SOLUSDT", T0, 150.0, 1.0, 1e9, rate, None)])
    body = (await client.get("/api/v1/charts/SOLUSDT")).json()
    # hour 1: its last rate; hour 2: no rate known (left out); hour 3: its rate
    assert body["funding"] == [[T0 - 3 * HOUR, 0.0002], [T0 - HOUR, -0.0001]]
