"""The volume-alerts HTTP API on a minimal app (the router alone) over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from marketpulse.bus import topics
from marketpulse.bus.base import Message
from marketpulse.clock import FakeClock
from marketpulse.detection.service import VolumeAlertStore
from marketpulse.detection.views import router
from marketpulse.runtime import Runtime
from support.waiting import drained

H = 1_760_126_400_000  # 2025-10-10 20:00 UTC, the `clock` fixture's start
MIN = 60_000
HOUR = 3_600_000
KEY = {"X-API-Key": "test-key"}


@pytest.fixture
async def client(runtime: Runtime, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    clock.set(H + 2 * HOUR)  # the alerts below (H-5h … H+1h) lie inside the ingest window around it
    app = FastAPI()
    app.state.runtime = runtime
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


def body(**overrides: Any) -> dict[str, Any]:
    alert = {
        "symbol": "BTCUSDT", "asset": "BTC", "currentVolume": 12_000_000, "previousVolume": 3_000_000,
        "volumeRatio": 4.0, "price": 121_000.5, "fundingRate": 0.0001, "candleDirection": "bullish",
        "alertType": "SPIKE", "message": "BTC spike", "timestamp": H + 5 * MIN, "hourTimestamp": H, "isUpdate": False,
    }
    alert.update(overrides)
    return alert


async def stored(runtime: Runtime) -> list[dict[str, Any]]:
    return [a.to_wire() for a in await VolumeAlertStore(runtime.sessions).latest()]


async def test_ingest_stores_publishes_and_accepts_iso_or_ms(client: httpx.AsyncClient, runtime: Runtime) -> None:
    published: list[Message] = []

    async def collect(message: Message) -> None:
        published.append(message)

    await runtime.bus.subscribe(topics.ALERTS_VOLUME, "test", collect)
    iso = body(symbol="eth-usdt", asset=None, message=None, isUpdate=None, hourTimestamp=None,
               timestamp="2025-10-10T20:10:00Z", alertType="HALF_UPDATE")
    response = await client.post("/api/v1/volume-alerts/ingest", json=[body(), iso], headers=KEY)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["stored"] == 2 and answer["duplicates"] == 0
    btc, eth = answer["alerts"]
    assert btc["timestamp"] == H + 5 * MIN and btc["hourTimestamp"] == H and btc["price"] == 121_000.5
    # ISO time → ms; derived fields: asset from the symbol, hour from the time, isUpdate from the type.
    assert eth["symbol"] == "ETHUSDT" and eth["asset"] == "ETH"
    assert eth["timestamp"] == H + 10 * MIN and eth["hourTimestamp"] == H and eth["isUpdate"] is True
    assert "ETHUSDT" in eth["message"]
    await drained(runtime.bus)
    assert sorted(m.data.symbol for m in published) == ["BTCUSDT", "ETHUSDT"]
    assert len(await stored(runtime)) == 2

    again = await client.post("/api/v1/volume-alerts/ingest", json=body(), headers=KEY)
    assert again.status_code == 200 and again.json()["stored"] == 0 and again.json()["duplicates"] == 1


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
async def test_401_without_or_with_wrong_key_even_for_an_invalid_body(
    client: httpx.AsyncClient, runtime: Runtime, headers: dict[str, str]
) -> None:
    response = await client.post("/api/v1/volume-alerts/ingest", content=b"{not json", headers=headers)
    assert response.status_code == 401
    assert await stored(runtime) == []


async def test_422_names_each_bad_field_and_stores_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    bad = body(currentVolume=-1, candleDirection="up", timestamp="last tuesday")
    del bad["symbol"]
    response = await client.post("/api/v1/volume-alerts/ingest", json=[body(), bad], headers=KEY)
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert locs == {("body", 1, "symbol"), ("body", 1, "currentVolume"), ("body", 1, "candleDirection"),
                    ("body", 1, "timestamp")}
    assert await stored(runtime) == []  # the valid first alert was not stored either

    seconds = await client.post("/api/v1/volume-alerts/ingest", json=body(timestamp=1_760_126_700), headers=KEY)
    assert seconds.status_code == 422 and seconds.json()["detail"][0]["loc"] == ["body", "timestamp"]
    broken = await client.post("/api/v1/volume-alerts/ingest", content=b"[{", headers=KEY)
    assert broken.status_code == 422 and broken.json()["detail"][0]["loc"] == ["body"]


async def test_413_over_the_body_limit(client: httpx.AsyncClient, runtime: Runtime) -> None:
    limit = runtime.settings.max_body_bytes
    response = await client.post(
        "/api/v1/volume-alerts/ingest", json=[body(message="x" * 500)] * (limit // 500 + 1), headers=KEY
    )
    assert response.status_code == 413
    assert await stored(runtime) == []


async def test_list_newest_first_with_symbol_and_limit(client: httpx.AsyncClient) -> None:
    alerts = [
        body(symbol="BTCUSDT", timestamp=H + 5 * MIN),
        body(symbol="ETHUSDT", timestamp=H + 15 * MIN),
        body(symbol="BTCUSDT", alertType="FULL_UPDATE", timestamp="2025-10-10T21:00:00+00:00"),
        body(symbol="SOLUSDT", timestamp=H - 2 * HOUR, hourTimestamp=H - 2 * HOUR),
    ]
    assert (await client.post("/api/v1/volume-alerts/ingest", json=alerts, headers=KEY)).status_code == 200
    listing = (await client.get("/api/v1/volume-alerts")).json()
    assert [(a["symbol"], a["timestamp"]) for a in listing["data"]] == [
        ("BTCUSDT", H + HOUR), ("ETHUSDT", H + 15 * MIN), ("BTCUSDT", H + 5 * MIN), ("SOLUSDT", H - 2 * HOUR)]
    assert listing["count"] == 4
    btc = (await client.get("/api/v1/volume-alerts", params={"symbol": "btc_usdt"})).json()["data"]
    assert [a["alertType"] for a in btc] == ["FULL_UPDATE", "SPIKE"]
    two = (await client.get("/api/v1/volume-alerts", params={"limit": 2})).json()["data"]
    assert [a["symbol"] for a in two] == ["BTCUSDT", "ETHUSDT"]
    assert (await client.get("/api/v1/volume-alerts", params={"limit": 0})).status_code == 422


async def test_recent_hours_counts_back_from_the_injected_clock(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    alerts = [body(symbol="BTCUSDT", timestamp=H - 30 * MIN, hourTimestamp=H - HOUR),
              body(symbol="ETHUSDT", timestamp=H - 90 * MIN, hourTimestamp=H - 2 * HOUR),
              body(symbol="SOLUSDT", timestamp=H - 5 * HOUR, hourTimestamp=H - 5 * HOUR)]
    assert (await client.post("/api/v1/volume-alerts/ingest", json=alerts, headers=KEY)).status_code == 200
    clock.set(H)
    one = (await client.get("/api/v1/volume-alerts/recent", params={"hours": 1})).json()["data"]
    assert [a["symbol"] for a in one] == ["BTCUSDT"]
    two = (await client.get("/api/v1/volume-alerts/recent", params={"hours": 2})).json()["data"]
    assert [a["symbol"] for a in two] == ["BTCUSDT", "ETHUSDT"]
    assert (await client.get("/api/v1/volume-alerts/recent", params={"hours": 0})).status_code == 422


async def test_recent_hours_counts_back_from_the_market_clock_not_the_wall_clock(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock
) -> None:
    # `pulse demo` replays 2025 while the wall clock says otherwise: "the last hour" is the market's.
    market = FakeClock(H + 2 * HOUR)
    runtime.market_clock = market
    clock.set(H + 400 * 24 * HOUR)  # the wall clock, more than a year later
    alerts = [body(symbol="BTCUSDT", timestamp=H + 90 * MIN, hourTimestamp=H + HOUR),
              body(symbol="ETHUSDT", timestamp=H - 30 * MIN, hourTimestamp=H - HOUR)]
    assert (await client.post("/api/v1/volume-alerts/ingest", json=alerts, headers=KEY)).status_code == 200
    one = (await client.get("/api/v1/volume-alerts/recent", params={"hours": 1})).json()["data"]
    assert [a["symbol"] for a in one] == ["BTCUSDT"]
    market.set(H)
    assert [a["symbol"] for a in (await client.get("/api/v1/volume-alerts/recent", params={"hours": 1})).json()[
        "data"]] == ["BTCUSDT", "ETHUSDT"]  # both at or after H-1h (BTC's is "in the future" of this clock)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("timestamp", "2099-12-31T00:00:00Z", "in the future"),  # would top the newest-first list for decades
    ("timestamp", H + 2 * HOUR + 2 * MIN, "in the future"),  # beyond the 60 s of clock skew
    ("timestamp", H + 2 * HOUR - 25 * HOUR, "older than the ingest window"),  # the default window is a day
    ("hourTimestamp", H - HOUR, "start of the hour of `timestamp`"),  # would dodge the one-per-hour rule
    ("hourTimestamp", H + HOUR + 1, "start of the hour of `timestamp`"),
    ("symbol", "-/_ :", "not a market symbol"),  # only separators: it used to be stored as ""
    ("symbol", "\U0001F680USDT", "not a market symbol"),  # emoji
    ("symbol", "<b>BTC</b>USDT", "not a market symbol"),  # markup
    ("symbol", "B", "not a market symbol"),
    ("symbol", "X" * 31, "not a market symbol"),
])
async def test_alerts_that_would_poison_the_feed_are_refused_naming_the_field(
    client: httpx.AsyncClient, runtime: Runtime, field: str, value: Any, message: str
) -> None:
    alert = body(timestamp=H + 2 * HOUR - 5 * MIN, hourTimestamp=H + HOUR)  # the clock reads H+2h
    alert[field] = value
    if field == "timestamp":
        del alert["hourTimestamp"]
    response = await client.post("/api/v1/volume-alerts/ingest", json=[body(), alert], headers=KEY)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", 1, field] and message in error["msg"]
    assert await stored(runtime) == []


async def test_the_ingest_window_is_a_setting_and_allows_clock_skew(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"ingest_time_window_s": 3600})
    now = H + 2 * HOUR
    old = await client.post("/api/v1/volume-alerts/ingest", json=body(timestamp=now - 90 * MIN, hourTimestamp=None),
                            headers=KEY)
    assert old.status_code == 422 and "3600 s" in old.json()["detail"][0]["msg"]
    ok = [body(symbol="btc-usdt", timestamp=now - 30 * MIN, hourTimestamp=None),
          body(symbol="ETHUSDT", timestamp=now + 30_000, hourTimestamp=None),  # 30 s ahead: skew, accepted
          body(symbol="SOLUSDT", alertType="FULL_UPDATE", timestamp=now, hourTimestamp=None)]
    response = await client.post("/api/v1/volume-alerts/ingest", json=ok, headers=KEY)
    assert response.status_code == 200, response.text
    assert [(a["symbol"], a["hourTimestamp"]) for a in response.json()["alerts"]] == [
        ("BTCUSDT", now - HOUR), ("ETHUSDT", now), ("SOLUSDT", now - HOUR)]  # a FULL_UPDATE reports the hour before


async def test_the_list_holds_at_most_the_callers_plans_count(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from marketpulse.accounts.plans import plan_named

    alerts = [body(symbol=f"S{i:03d}USDT", timestamp=H + i * 1000) for i in range(60)]
    assert (await client.post("/api/v1/volume-alerts/ingest", json=alerts, headers=KEY)).status_code == 200
    accounts = runtime.services.accounts
    counts = {}
    for plan in ("pro", "enterprise"):
        user = await accounts.create_user(f"{plan}@example.com", None, plan=plan, verified=True)
        token = (await accounts.start_session(user)).access_token
        got = await client.get("/api/v1/volume-alerts", params={"limit": 500},
                               headers={"Authorization": f"Bearer {token}"})
        counts[plan] = got.json()["count"]
    anonymous = (await client.get("/api/v1/volume-alerts", params={"limit": 500})).json()
    recent = (await client.get("/api/v1/volume-alerts/recent", params={"hours": 24})).json()
    assert (anonymous["plan"], anonymous["count"], recent["count"]) == ("free", 10, 10)
    assert anonymous["data"][0]["symbol"] == "S059USDT"  # still the newest
    assert counts == {"pro": plan_named("pro").volume_alerts_listed, "enterprise": 60}  # enterprise: unlimited
