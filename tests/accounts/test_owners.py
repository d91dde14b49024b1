"""A signed-in request owns its rows: user B gets 404 for user A's backtest job, anonymous callers 401, lists show
each their own, and a bad token is refused rather than treated as anonymous. Socket.IO connections join their
user's room by token. A user's plan, as stored at each request, sets their limits."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select, update

from marketpulse.accounts.tables import UserRow
from marketpulse.backtest.tables import BacktestJobRow
from marketpulse.runtime import Runtime

from .conftest import Sink, bearer, signin, signup_verified

ETH_WEEK = {"strategy": "ema_cross", "symbol": "ETHUSDT", "interval": "1h", "from": "2025-10-08",
            "to": "2025-10-13T00:00:00Z", "params": {"fast": 5, "slow": 20}, "fee_bps": 4, "cash": 5_000}


async def test_a_users_backtest_is_theirs_alone(client: httpx.AsyncClient, sink: Sink, runtime: Runtime) -> None:
    await signup_verified(client, sink, "alice@example.com")
    await signup_verified(client, sink, "bob@example.com")
    alice, bob = bearer(await signin(client, "alice@example.com")), bearer(await signin(client, "bob@example.com"))

    started = await client.post("/api/v1/backtests", json=ETH_WEEK, headers=alice)
    assert started.status_code == 202, started.text
    job = started.json()["id"]
    await runtime.services.backtests.wait()
    assert (await client.get(f"/api/v1/backtests/{job}", headers=alice)).json()["status"] == "done"
    assert (await client.get(f"/api/v1/backtests/{job}", headers=bob)).status_code == 404
    assert (await client.get(f"/api/v1/backtests/{job}/report", headers=bob)).status_code == 404
    assert (await client.get("/api/v1/backtests", headers=bob)).json()["data"] == []
    for path in (f"/api/v1/backtests/{job}", f"/api/v1/backtests/{job}/report", "/api/v1/backtests"):
        anonymous = await client.get(path)  # no shared default owner any more: sign in first
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert [j["id"] for j in (await client.get("/api/v1/backtests", headers=alice)).json()["data"]] == [job]


async def test_a_bad_token_is_refused_not_taken_for_anonymous(client: httpx.AsyncClient, runtime: Runtime) -> None:
    for header in ("Bearer not-a-token", "Bearer " + "e30.e30.sig"):
        resp = await client.post("/api/v1/backtests", json=ETH_WEEK, headers={"Authorization": header})
        assert resp.status_code == 401
    assert (await client.post("/api/v1/backtests", json=ETH_WEEK)).status_code == 401  # no credentials at all
    assert await jobs_stored(runtime) == 0  # nothing was started


async def test_socket_connections_join_their_users_room(client: httpx.AsyncClient, sink: Sink,
                                                        runtime: Runtime) -> None:
    user_id = await signup_verified(client, sink, "carol@example.com")
    token = (await signin(client, "carol@example.com"))["access_token"]
    accounts = runtime.services.accounts
    assert await accounts.owner_of_socket({"token": token}) == user_id
    for auth in (None, {}, {"token": "forged"}, "junk", {"token": 5}):
        assert await accounts.owner_of_socket(auth) is None  # anonymous: public rooms only


async def test_a_signed_in_users_own_plan_sets_their_backtests_per_day(client: httpx.AsyncClient, sink: Sink,
                                                                       runtime: Runtime) -> None:
    free_id = await signup_verified(client, sink, "free@example.com")  # a new user is on the free plan: 3 a day
    await runtime.services.accounts.create_user("pro@example.com", "Correct-Horse-9-battery", plan="pro",
                                                verified=True)
    free, pro = bearer(await signin(client, "free@example.com")), bearer(await signin(client, "pro@example.com"))
    cheap = {**ETH_WEEK, "symbol": "NOPEUSDT"}  # fails at once: no candles
    for _ in range(3):
        assert (await client.post("/api/v1/backtests", json=cheap, headers=free)).status_code == 202
        await runtime.services.backtests.wait()  # one at a time: the per-owner queue limit is not the point here
    refused = await client.post("/api/v1/backtests", json=cheap, headers=free)
    assert refused.status_code == 429 and refused.json()["detail"]["limit"] == 3
    for _ in range(4):
        assert (await client.post("/api/v1/backtests", json=cheap, headers=pro)).status_code == 202
        await runtime.services.backtests.wait()
    # An upgrade applies to the very next job, with the same token (the plan is read as stored now).
    await set_plan(runtime, free_id, "pro")
    assert (await client.post("/api/v1/backtests", json=cheap, headers=free)).status_code == 202
    await runtime.services.backtests.wait()


async def jobs_stored(runtime: Runtime) -> int:
    async with runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(BacktestJobRow))).scalar_one())


async def set_plan(runtime: Runtime, user_id: str, plan: str) -> None:
    """What an admin's PATCH does to the row (the admin API is tested on its own)."""
    async with runtime.sessions() as s:
        await s.execute(update(UserRow).where(UserRow.id == user_id).values(plan=plan))
        await s.commit()
