"""A signed-in request owns its rows: user B (and anonymous callers) get 404 for user A's backtest job, lists show
each their own, and a bad token is refused rather than treated as anonymous. Socket.IO connections join their
user's room by token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from marketpulse.accounts import views
from marketpulse.api.errors import install_error_handlers
from marketpulse.backtest import views as backtest_views
from marketpulse.runtime import Runtime
from marketpulse.trading.owners import DEFAULT_OWNER

from .conftest import Sink, bearer, signin, signup_verified

ETH_WEEK = {"strategy": "ema_cross", "symbol": "ETHUSDT", "interval": "1h", "from": "2025-10-08",
            "to": "2025-10-13T00:00:00Z", "params": {"fast": 5, "slow": 20}, "fee_bps": 4, "cash": 5_000}


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(views.router)
    app.include_router(backtest_views.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c
    await runtime.services.backtests.wait()


async def test_a_users_backtest_is_theirs_alone(client: httpx.AsyncClient, sink: Sink, runtime: Runtime) -> None:
    await signup_verified(client, sink, "alice@example.com")
    await signup_verified(client, sink, "bob@example.com")
    alice, bob = bearer(await signin(client, "alice@example.com")), bearer(await signin(client, "bob@example.com"))

    started = await client.post("/api/v1/backtests", json=ETH_WEEK, headers=alice)
    assert started.status_code == 202, started.text
    job = started.json()["id"]
    await runtime.services.backtests.wait()
    assert (await client.get(f"/api/v1/backtests/{job}", headers=alice)).json()["status"] == "done"
    for other in (bob, {}):  # another user, and an anonymous caller (the shared default owner)
        assert (await client.get(f"/api/v1/backtests/{job}", headers=other)).status_code == 404
        assert (await client.get(f"/api/v1/backtests/{job}/report", headers=other)).status_code == 404
        assert (await client.get("/api/v1/backtests", headers=other)).json() == []
    assert [j["id"] for j in (await client.get("/api/v1/backtests", headers=alice)).json()] == [job]


async def test_a_bad_token_is_refused_not_taken_for_anonymous(client: httpx.AsyncClient) -> None:
    for header in ("Bearer not-a-token", "Bearer " + "e30.e30.sig"):
        resp = await client.post("/api/v1/backtests", json=ETH_WEEK, headers={"Authorization": header})
        assert resp.status_code == 401
    assert (await client.get("/api/v1/backtests")).json() == []  # nothing was started


async def test_socket_connections_join_their_users_room(client: httpx.AsyncClient, sink: Sink,
                                                        runtime: Runtime) -> None:
    user_id = await signup_verified(client, sink, "carol@example.com")
    token = (await signin(client, "carol@example.com"))["access_token"]
    accounts = runtime.services.accounts
    assert await accounts.owner_of_socket({"token": token}) == user_id
    for auth in (None, {}, {"token": "forged"}, "junk", {"token": 5}):
        assert await accounts.owner_of_socket(auth) == DEFAULT_OWNER


async def test_a_signed_in_users_own_plan_sets_their_backtests_per_day(client: httpx.AsyncClient, sink: Sink,
                                                                       runtime: Runtime) -> None:
    assert runtime.settings.paper_plan == "pro"  # the anonymous owner's plan: unlimited
    await signup_verified(client, sink, "free@example.com")  # a new user is on the free plan: 3 a day
    await runtime.services.accounts.create_user("pro@example.com", "Correct-Horse-9-battery", plan="pro",
                                                verified=True)
    free, pro = bearer(await signin(client, "free@example.com")), bearer(await signin(client, "pro@example.com"))
    cheap = {**ETH_WEEK, "symbol": "NOPEUSDT"}  # fails at once: no candles
    for _ in range(3):
        assert (await client.post("/api/v1/backtests", json=cheap, headers=free)).status_code == 202
        await runtime.services.backtests.wait()  # one at a time: the per-owner queue limit is not the point here
    refused = await client.post("/api/v1/backtests", json=cheap, headers=free)
    assert refused.status_code == 429 and refused.json()["detail"]["limit"] == 3
    for who in (pro, {}):
        for _ in range(4):
            assert (await client.post("/api/v1/backtests", json=cheap, headers=who)).status_code == 202
            await runtime.services.backtests.wait()
