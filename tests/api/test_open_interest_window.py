"""Open-interest ingest refuses what would poison the feed: times outside the window around the market clock, and
keys outside the exchanges' symbol character set; each error names the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from support.accounts import sign_in_user

from .serving import API_KEY

INGEST = "/api/v1/market/open-interest/ingest"
KEY = {"X-API-Key": API_KEY}
MIN = 60_000
HOUR = 3_600_000


@pytest.mark.parametrize(("as_of", "message"), [
    (1, "outside 2000-01-01"),  # 1 ms after 1970: was accepted, and read as stale for ever
    (-HOUR - 1, "older than the ingest window of 3600 s"),  # relative to the clock (below)
    (2 * MIN, "in the future"),
])
async def test_as_of_outside_the_window_is_422_naming_it(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock, as_of: int, message: str
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"ingest_time_window_s": 3600})
    value = as_of if as_of == 1 else clock.now_ms() + as_of
    r = await client.post(INGEST, json={"data": {"BTCUSDT": 1.0}, "asOf": value}, headers=KEY)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "asOf"] and message in error["msg"]
    ok = await client.post(INGEST, json={"data": {"BTCUSDT": 1.0}, "asOf": clock.now_ms() - HOUR}, headers=KEY)
    assert ok.status_code == 200, ok.text  # the window's edge is inside it


async def test_as_of_window_follows_the_market_clock(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    # In `pulse demo` the market is a replay in the past: its figures are current on the market's clock.
    market = FakeClock(clock.now_ms() - 400 * 24 * HOUR)
    runtime.market_clock = market
    r = await client.post(INGEST, json={"data": {"BTCUSDT": 1.0}, "asOf": market.now_ms() - MIN}, headers=KEY)
    assert r.status_code == 200, r.text
    wall = await client.post(INGEST, json={"data": {"BTCUSDT": 1.0}, "asOf": clock.now_ms()}, headers=KEY)
    assert wall.status_code == 422 and wall.json()["detail"][0]["loc"] == ["body", "asOf"]


@pytest.mark.parametrize("key", ["-/_ :", "\U0001F680USDT", "<b>BTC</b>USDT", "B", "X" * 31, "BTC.USDT"])
async def test_keys_outside_the_symbol_character_set_are_422_naming_them(
    client: httpx.AsyncClient, runtime: Runtime, key: str
) -> None:
    data: dict[str, Any] = {"ETHUSDT": 1.0, key: 2.0}
    r = await client.post(INGEST, json={"data": data}, headers=KEY)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "data", key] and "not a market symbol" in error["msg"]
    pro = (await sign_in_user(runtime, plan="pro")).headers  # a plan that sees the figures, so {} means none stored
    assert (await client.get("/api/v1/market/open-interest", headers=pro)).json()["data"] == {}
