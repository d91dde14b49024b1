"""Bad numbers and strings answer 422 naming the field, on SQLite and PostgreSQL alike, and never a 500.

Each case is one the fuzzing of the landed tree turned into a 500 (or into a row stored on SQLite only).
Error bodies echo at most a short excerpt of the input; every body is capped by one limit (413).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from marketpulse.api.errors import EXCERPT_CHARS, TEXT_CHARS, clip, excerpt, render_errors
from marketpulse.backtest.tables import BacktestJobRow
from marketpulse.detection.tables import VolumeAlertRow
from marketpulse.marketdata.tables import OpenInterestRow
from marketpulse.runtime import Runtime
from marketpulse.times import EARLIEST_MS, LATEST_MS
from marketpulse.trading.paper.tables import PaperDeploymentRow, PaperOrderRow

from .serving import API_KEY

pytestmark = pytest.mark.usefixtures("signed_in")  # paper and backtests are a signed-in user's

KEY = {"X-API-Key": API_KEY, "content-type": "application/json"}
JSON = {"content-type": "application/json"}
ORDER = '{"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": %s}'
DEPLOY_CASH = '{"strategy": "ema_cross", "symbol": "BTCUSDT", "cash": %s}'
DEPLOY_PARAM = '{"strategy": "ema_cross", "symbol": "BTCUSDT", "params": {"fast": %s}}'
BACKTEST_CASH = '{"strategy": "ema_cross", "symbol": "BTCUSDT", "cash": %s}'
BACKTEST_FROM = '{"strategy": "ema_cross", "symbol": "BTCUSDT", "from": %s}'
ALERT = ('{"symbol": %s, "currentVolume": 9e6, "previousVolume": 1e6, "volumeRatio": 9, '
         '"candleDirection": "bullish", "alertType": "SPIKE", "timestamp": %s}')
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e309"]


async def _count(runtime: Runtime, table: Any) -> int:
    async with runtime.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
async def stored(runtime: Runtime) -> AsyncIterator[None]:
    """After the test: nothing reached any table the bad requests aimed at."""
    yield
    for table in (PaperOrderRow, PaperDeploymentRow, BacktestJobRow, VolumeAlertRow, OpenInterestRow):
        assert await _count(runtime, table) == 0, table.__tablename__


@pytest.mark.parametrize("number", NON_FINITE)
@pytest.mark.parametrize(
    ("path", "template", "loc"),
    [
        ("/api/v1/paper/orders", ORDER, ["body", "quantity"]),
        ("/api/v1/paper/deployments", DEPLOY_CASH, ["body", "cash"]),
        ("/api/v1/paper/deployments", DEPLOY_PARAM, ["body", "params", "fast"]),
        ("/api/v1/backtests", BACKTEST_CASH, ["body", "cash"]),
        ("/api/v1/backtests", BACKTEST_FROM, ["body", "from"]),
    ],
)
async def test_non_finite_numbers_are_422_naming_the_field(
    client: httpx.AsyncClient, stored: None, path: str, template: str, loc: list[str], number: str
) -> None:
    r = await client.post(path, content=template % number, headers=JSON)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == loc and "finite" in error["msg"]
    assert isinstance(error["input"], str) and not math.isfinite(float(error["input"]))  # JSON can't carry NaN


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/api/v1/paper/orders", ORDER % "1.92e307", ["body", "quantity"]),  # its notional would be inf
        ("/api/v1/paper/orders", '{"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 1, '
                                 '"limit_price": 1e300}', ["body", "limit_price"]),
        ("/api/v1/paper/orders", ORDER % "1e20", ["body", "quantity"]),
        ("/api/v1/paper/deployments", DEPLOY_CASH % "1e300", ["body", "cash"]),
        ("/api/v1/paper/deployments", DEPLOY_PARAM % "99999999999999999999", ["body", "params", "fast"]),
        ("/api/v1/backtests", BACKTEST_FROM % "99999999999999999999", ["body", "from"]),
    ],
)
async def test_numbers_beyond_what_the_domain_holds_are_422(
    client: httpx.AsyncClient, stored: None, path: str, body: str, loc: list[str]
) -> None:
    r = await client.post(path, content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize("timestamp", ["253402300800000", '"10000-01-01T00:00:00"', "99999999999999999999"])
async def test_alert_timestamp_past_year_9999_is_422(client: httpx.AsyncClient, stored: None, timestamp: str) -> None:
    r = await client.post("/api/v1/volume-alerts/ingest", content=ALERT % ('"BTCUSDT"', timestamp), headers=KEY)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "timestamp"]


@pytest.mark.parametrize("query", ["start=99999999999999999999", "end=253402300800000", "start=-1", "end=1e309",
                                   "start=NaN"])
async def test_history_bounds_are_422(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get(f"/api/v1/market/history/BTCUSDT?{query}")
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", query.split("=")[0]]


async def test_history_accepts_the_whole_time_window(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/api/v1/market/history/BTCUSDT?start={EARLIEST_MS}&end={LATEST_MS - 1}")
    assert r.status_code == 404  # the window is valid (no 422); the symbol is unknown here


async def test_open_interest_key_longer_than_its_column_is_422_naming_it(
    client: httpx.AsyncClient, stored: None
) -> None:
    key = "A" * 61 + "USDT"
    r = await client.post("/api/v1/market/open-interest/ingest", json={"data": {key: 1.0}}, headers=KEY)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "data", key]


NUL = "BTC\x00USDT"  # json.dumps writes it \u0000


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("POST", "/api/v1/paper/orders", json.dumps({"symbol": NUL, "side": "buy", "quantity": 1}), ["body", "symbol"]),
        ("POST", "/api/v1/paper/deployments", json.dumps({"strategy": "ema_cross", "symbol": NUL}), ["body", "symbol"]),
        ("POST", "/api/v1/paper/deployments", '{"strategy": "ema_cross", "symbol": "BTCUSDT", '
                                              '"params": {"a\\u0000": 1}}', ["body", "params", "a\x00"]),
        ("POST", "/api/v1/backtests", json.dumps({"strategy": "ema_cross", "symbol": NUL}), ["body", "symbol"]),
        ("POST", "/api/v1/volume-alerts/ingest", ALERT % (json.dumps(NUL), 1_760_126_400_000), ["body", "symbol"]),
        ("POST", "/api/v1/market/open-interest/ingest", json.dumps({"data": {NUL: 1}}), ["body", "data", NUL]),
        ("GET", "/api/v1/market/history/BTC%00USDT", None, ["path", "symbol"]),
        ("GET", "/api/v1/market/symbol/BTC%00USDT", None, ["path", "symbol"]),
        ("GET", "/api/v1/volume-alerts?symbol=BTC%00USDT", None, ["query", "symbol"]),
        ("GET", "/api/v1/market/data?q=BTC%00", None, ["query", "q"]),
        ("GET", "/api/v1/paper/orders/x%00y", None, ["path", "order_id"]),
        ("DELETE", "/api/v1/paper/orders/x%00y", None, ["path", "order_id"]),
        ("GET", "/api/v1/backtests/x%00y", None, ["path", "job_id"]),
    ],
)
async def test_a_nul_character_is_422_on_both_stores(
    client: httpx.AsyncClient, stored: None, method: str, path: str, body: str | None, loc: list[Any]
) -> None:
    r = await client.request(method, path, content=body, headers=KEY)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc


async def test_an_error_echoes_only_an_excerpt_of_the_input(client: httpx.AsyncClient) -> None:
    huge = "x" * 3_000
    r = await client.post("/api/v1/paper/deployments", json={"strategy": huge, "symbol": "BTCUSDT"})
    assert r.status_code == 422
    assert huge[:TEXT_CHARS + 1] not in r.text and len(r.text) < 1_500  # messages quoting it are clipped too
    r = await client.post("/api/v1/paper/orders", json={"symbol": "BTCUSDT", "side": "buy", "quantity": [1] * 900})
    assert r.status_code == 422 and len(r.text) < 1_000


@pytest.mark.parametrize("path", ["/api/v1/paper/orders", "/api/v1/paper/deployments", "/api/v1/backtests",
                                  "/api/v1/volume-alerts/ingest", "/api/v1/market/open-interest/ingest"])
async def test_every_body_has_the_one_limit_even_streamed_without_a_length(
    client: httpx.AsyncClient, runtime: Runtime, stored: None, path: str
) -> None:
    over = b'{"symbol": "' + b"x" * runtime.settings.max_body_bytes + b'"}'
    assert (await client.post(path, content=over, headers=KEY)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(over), 1000):
            yield over[i:i + 1000]

    r = await client.post(path, content=chunks(), headers=KEY)  # chunked: no Content-Length to trust
    assert r.status_code == 413 and r.json()["detail"] == "Content Too Large"


def test_the_error_renderer_makes_any_input_json_safe() -> None:
    rendered = render_errors([{"type": "t", "loc": ("body", "x" * 1_000), "msg": "m" * 1_000,
                               "input": {"a": math.nan, "b": [math.inf] * 500}, "ctx": {"error": ValueError("v")}}])
    (error,) = rendered
    assert isinstance(error["input"], str) and len(error["input"]) <= EXCERPT_CHARS + 1
    assert error["ctx"] == {"error": "v"} and len(error["msg"]) == len(error["loc"][1]) == TEXT_CHARS + 1
    assert excerpt(-math.inf) == "-inf" and clip({"k": math.nan}) == {"k": "nan"}
    assert len(render_errors([{"loc": [], "msg": "m", "type": "t"}] * 80)) == 51  # 50 and a count of the rest
