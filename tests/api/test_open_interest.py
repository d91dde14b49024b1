"""Open interest: the stale-while-revalidate cache, the ingest guard rails, persistence, and the bus."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from marketpulse.api.app import create_app
from marketpulse.bus import Message, topics
from marketpulse.clock import FakeClock
from marketpulse.marketdata.open_interest import OpenInterestCache
from marketpulse.marketdata.tables import OpenInterestRow
from marketpulse.runtime import Runtime
from support.accounts import SignedIn, authorize, sign_in_user, token_on_plan

from .serving import API_KEY, eventually, lifespan

URL = "/api/v1/market/open-interest"
INGEST = URL + "/ingest"
MIN = 60_000
KEY = {"X-API-Key": API_KEY}


# --- the cache (pure) --------------------------------------------------------------------------------------------


def make_cache(clock: FakeClock) -> OpenInterestCache:
    return OpenInterestCache(clock, stale_s=360, dangerously_stale_s=1800)


def test_freshness_moves_with_the_clock_and_data_stays_served(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.update({"BTCUSDT": 12.7e9}, clock.now_ms())

    clock.advance(6 * MIN - 1)
    snap = cache.snapshot()
    assert (snap.stale, snap.dangerously_stale) == (False, False)

    clock.advance(1)  # exactly 6 minutes
    snap = cache.snapshot()
    assert (snap.stale, snap.dangerously_stale) == (True, False)
    assert snap.data == {"BTCUSDT": 12.7e9}  # stale is still served

    clock.advance(24 * MIN)  # 30 minutes
    snap = cache.snapshot()
    assert (snap.stale, snap.dangerously_stale) == (True, True)
    assert snap.data == {"BTCUSDT": 12.7e9}

    cache.update({"BTCUSDT": 13e9}, clock.now_ms())  # a refresh makes it fresh again
    assert cache.snapshot().stale is False


def test_empty_cache_is_dangerously_stale(clock: FakeClock) -> None:
    assert make_cache(clock).snapshot().to_wire() == {"data": {}, "asOf": None, "stale": True,
                                                      "dangerouslyStale": True}


def test_keys_are_normalized_and_older_values_never_replace_newer(clock: FakeClock) -> None:
    cache = make_cache(clock)
    now = clock.now_ms()
    cache.update({"btc-usdt": 2.0, "ETH_USDT": 1.0}, now)
    taken = cache.update({"BTCUSDT": 1.0}, now - MIN)  # a late redelivery of older figures
    assert taken == {}
    assert cache.snapshot().data == {"BTCUSDT": 2.0, "ETHUSDT": 1.0}
    assert cache.snapshot().as_of == now


def test_old_data_is_stale_from_its_as_of_and_an_echo_is_not_a_refresh(clock: FakeClock) -> None:
    cache = make_cache(clock)
    old = clock.now_ms() - 10 * MIN
    cache.update({"BTCUSDT": 1.0}, old)  # a monitor posting 10-minute-old figures
    assert cache.snapshot().stale is True
    cache.update({"BTCUSDT": 1.0}, old, refreshed_at=clock.now_ms())  # the same figures back from the bus
    assert cache.snapshot().stale is True


# --- the endpoints ----------------------------------------------------------------------------------------------


@pytest.fixture
async def as_pro(client: httpx.AsyncClient, runtime: Runtime) -> SignedIn:
    """The client reads as a pro user: the plans with the open-interest column are the ones that see its figures."""
    return await authorize(client, runtime, plan="pro")


@pytest.mark.parametrize("plan", [None, "free", "pro", "elite"])
async def test_the_figures_follow_the_plan_and_the_freshness_is_told_to_all(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock, plan: str | None
) -> None:
    assert (await client.post(INGEST, json={"data": {"BTCUSDT": 3e9}}, headers=KEY)).status_code == 200
    clock.advance(7 * MIN)  # stale: every plan is told, whether or not it sees the figures
    headers = {} if plan is None else (await sign_in_user(runtime, plan=plan)).headers
    r = await client.get(URL, headers=headers)
    assert r.status_code == 200, r.text
    shown = plan in ("pro", "elite")  # the plan table's open_interest_column
    assert r.json() == {"data": {"BTCUSDT": 3e9} if shown else {}, "plan": plan or "free",
                        "asOf": clock.now_ms() - 7 * MIN, "stale": True, "dangerouslyStale": False}


async def test_a_bad_bearer_token_is_refused_not_served_as_anonymous(client: httpx.AsyncClient) -> None:
    r = await client.get(URL, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401


@pytest.mark.usefixtures("as_pro")
async def test_ingest_then_get_normalizes_and_reports_staleness(client: httpx.AsyncClient, runtime: Runtime,
                                                                clock: FakeClock) -> None:
    body = {"data": {"btc-usdt": 12_700_000_000.5, "ETH_USDT": 8.5e9, "sol/usdt": 0}}
    r = await client.post(INGEST, json=body, headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 3, "asOf": clock.now_ms()}

    got = (await client.get(URL)).json()
    assert got == {"data": {"BTCUSDT": 12_700_000_000.5, "ETHUSDT": 8.5e9, "SOLUSDT": 0.0}, "plan": "pro",
                   "asOf": clock.now_ms(), "stale": False, "dangerouslyStale": False}

    clock.advance(6 * MIN)
    got = (await client.get(URL)).json()
    assert (got["stale"], got["dangerouslyStale"], got["data"]["BTCUSDT"]) == (True, False, 12_700_000_000.5)
    clock.advance(24 * MIN)
    await authorize(client, runtime)  # 30 minutes on, the first access token has expired
    got = (await client.get(URL)).json()
    assert (got["stale"], got["dangerouslyStale"]) == (True, True)


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
async def test_missing_or_wrong_key_is_401_even_with_an_invalid_body(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await client.post(INGEST, content=b"{not json", headers=headers)
    assert r.status_code == 401
    assert API_KEY not in r.text


@pytest.mark.parametrize(
    ("data", "bad_key"),
    [
        ({"BTCUSDT": 1.0, "ETHUSDT": -5}, "ETHUSDT"),
        ({"BTCUSDT": 1.0, "DOGEUSDT": "12"}, "DOGEUSDT"),
        ({"XRPUSDT": None}, "XRPUSDT"),
        ({"XRPUSDT": True}, "XRPUSDT"),
        ({"---": 1.0}, "---"),
    ],
)
@pytest.mark.usefixtures("as_pro")
async def test_invalid_values_are_422_naming_the_key_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime, data: dict[str, Any], bad_key: str
) -> None:
    r = await client.post(INGEST, json={"data": data}, headers=KEY)
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "data", bad_key]]
    assert (await client.get(URL)).json()["data"] == {}
    async with runtime.sessions() as s:
        assert (await s.execute(select(OpenInterestRow))).all() == []


@pytest.mark.usefixtures("as_pro")
async def test_out_of_range_number_is_422(client: httpx.AsyncClient) -> None:
    # JSON has no literal for infinity; an overflowing number is the way one would arrive, and is refused.
    r = await client.post(INGEST, content=b'{"data": {"BTCUSDT": 1e999}}', headers=KEY)
    assert r.status_code == 422
    assert (await client.get(URL)).json()["data"] == {}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b"[1, 2]", ["body", "data"]),
        (b'{"asOf": 1}', ["body", "data"]),
        (b'{"data": [1]}', ["body", "data"]),
        (b'{"data": {}, "asOf": "yesterday"}', ["body", "asOf"]),
        (b"not json", ["body"]),
    ],
)
async def test_malformed_bodies_are_422(client: httpx.AsyncClient, body: bytes, loc: list[str]) -> None:
    r = await client.post(INGEST, content=body, headers=KEY)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == loc


async def test_as_of_in_the_future_is_rejected(client: httpx.AsyncClient, clock: FakeClock) -> None:
    r = await client.post(INGEST, json={"data": {"BTCUSDT": 1}, "asOf": clock.now_ms() + 3_600_000}, headers=KEY)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "asOf"]


@pytest.mark.usefixtures("as_pro")
async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    data = {f"SYM{i}USDT": 1.0 for i in range(400)}  # > 4096 bytes (the test limit)
    r = await client.post(INGEST, json={"data": data}, headers=KEY)
    assert r.status_code == 413
    assert (await client.get(URL)).json()["data"] == {}


async def test_ingest_publishes_on_the_bus(client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def handler(msg: Message) -> None:
        await got.put(msg)

    sub = await runtime.bus.subscribe(topics.MARKET_OPEN_INTEREST, "test-observer", handler)
    as_of = clock.now_ms() - MIN
    r = await client.post(INGEST, json={"data": {"btcusdt": 5.5}, "asOf": as_of}, headers=KEY)
    assert r.status_code == 200
    msg = await asyncio.wait_for(got.get(), 5)
    assert msg.data == topics.OpenInterestEvent(as_of, {"BTCUSDT": 5.5})
    await sub.close()


@pytest.mark.usefixtures("as_pro")
async def test_ingested_figures_survive_a_restart(client: httpx.AsyncClient, runtime: Runtime,
                                                  clock: FakeClock, as_pro: SignedIn) -> None:
    as_of = clock.now_ms() - MIN
    assert (await client.post(INGEST, json={"data": {"BTCUSDT": 7.0}, "asOf": as_of}, headers=KEY)).status_code == 200

    restarted = create_app(runtime)  # a new process: empty memory, same database
    async with lifespan(restarted), httpx.AsyncClient(transport=httpx.ASGITransport(app=restarted),
                                                      base_url="http://localhost") as c2:
        got = (await c2.get(URL, headers=as_pro.headers)).json()
    assert got["data"] == {"BTCUSDT": 7.0} and got["asOf"] == as_of and got["stale"] is False


@pytest.mark.usefixtures("as_pro")
async def test_bus_updates_reach_the_cache_and_the_table(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": 1, "rows": [
        {"symbol": "BTCUSDT", "time": 1, "price": 60_000.0, "change_pct_24h": 1.0, "quote_volume_24h": 1e9}]})
    await runtime.bus.publish(topics.MARKET_OPEN_INTEREST, {"asOf": 5, "data": {"BTCUSDT": 9e9}})
    pro = {"Authorization": f"Bearer {await token_on_plan(runtime, 'pro')}"}

    async def settled() -> dict[str, Any] | None:
        # A pro user's view: the free view (anonymous) has no open-interest column.
        got: dict[str, Any] = (await client.get("/api/v1/market/symbol/BTCUSDT", headers=pro)).json().get(
            "data") or {}
        return got if got.get("openInterestUsd") == 9e9 else None

    row = await eventually(settled)
    assert row["price"] == 60_000.0
    oi = (await client.get(URL)).json()
    assert oi["data"] == {"BTCUSDT": 9e9} and oi["stale"] is False  # bus data counts from its arrival

    async def stored() -> list[float]:  # the shared store group persists it (a fresh session sees new commits)
        async with runtime.sessions() as s:
            return list((await s.execute(select(OpenInterestRow.usd))).scalars())

    assert await eventually(stored) == [9e9]
