"""Personal API keys: shown once, stored hashed, scoped (read / trade / alerts), last use recorded, revocable, and
never able to do what needs a signed-in session."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from marketpulse.accounts.tables import ApiKeyRow, UserRow
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime

from .conftest import STRONG, Sink, bearer, signin, signup_verified
from .test_owners import ETH_WEEK


def key_header(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_key(client: httpx.AsyncClient, session: dict[str, str], *scopes: str) -> str:
    resp = await client.post("/api/v1/account/api-keys", json={"name": "bot", "scopes": list(scopes)},
                             headers=session)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


async def test_a_key_is_shown_once_stored_hashed_and_acts_for_its_user(
    client: httpx.AsyncClient, sink: Sink, runtime: Runtime, clock: FakeClock
) -> None:
    await signup_verified(client, sink, "quant@example.com")
    session = bearer(await signin(client, "quant@example.com"))
    created = (await client.post("/api/v1/account/api-keys", json={"name": "my bot", "scopes": ["trade", "read"]},
                                 headers=session)).json()
    key = created["key"]
    assert key.startswith(created["prefix"] + "_") and created["prefix"].startswith("mpk_")
    assert created["scopes"] == ["read", "trade"] and created["last_used_at_ms"] is None
    listed = (await client.get("/api/v1/account/api-keys", headers=session)).json()["data"]
    assert listed == [{k: v for k, v in created.items() if k != "key"}]
    async with runtime.sessions() as s:
        stored = (await s.execute(select(ApiKeyRow))).scalar_one()
    assert key not in (stored.key_hash, stored.prefix, stored.scopes)

    clock.advance(5_000)
    started = await client.post("/api/v1/backtests", json=ETH_WEEK, headers=key_header(key))
    assert started.status_code == 202
    jobs = (await client.get("/api/v1/backtests", headers=session)).json()["data"]
    assert [j["id"] for j in jobs] == [started.json()["id"]]  # the key's job is its user's
    listed = (await client.get("/api/v1/account/api-keys", headers=session)).json()["data"]
    assert listed[0]["last_used_at_ms"] == clock.now_ms()


async def test_scopes_decide_what_a_key_may_do(client: httpx.AsyncClient, sink: Sink) -> None:
    await signup_verified(client, sink, "scoped@example.com")
    session = bearer(await signin(client, "scoped@example.com"))
    read_only = key_header(await new_key(client, session, "read"))
    alerts_only = key_header(await new_key(client, session, "alerts"))
    assert (await client.get("/api/v1/backtests", headers=read_only)).status_code == 200
    refused = await client.post("/api/v1/backtests", json=ETH_WEEK, headers=read_only)
    assert refused.status_code == 403 and refused.json()["detail"]["scope"] == "trade"
    assert (await client.get("/api/v1/backtests", headers=alerts_only)).status_code == 403
    assert (await client.get("/api/v1/backtests", headers=session)).json()["data"] == []  # nothing was started


async def test_a_key_cannot_do_what_needs_a_session(client: httpx.AsyncClient, sink: Sink,
                                                    runtime: Runtime) -> None:
    from marketpulse.accounts.core import Role

    await runtime.services.accounts.create_user("boss@example.com", STRONG, role=Role.ADMIN, verified=True)
    session = bearer(await signin(client, "boss@example.com"))
    key = key_header(await new_key(client, session, "read", "trade", "alerts"))
    assert (await client.get("/api/v1/auth/me", headers=key)).json()["role"] == "admin"
    for method, path, body in [
        ("POST", "/api/v1/account/api-keys", {"name": "child", "scopes": ["read"]}),
        ("GET", "/api/v1/account/api-keys", None),
        ("POST", "/api/v1/auth/change-password", {"current_password": STRONG, "new_password": STRONG + "x"}),
        ("POST", "/api/v1/auth/signout", None),
        ("GET", "/api/v1/admin/users", None),
    ]:
        resp = await client.request(method, path, json=body, headers=key)
        assert resp.status_code == 403 and resp.json()["detail"]["reason"] == "session_required", path


async def test_revoked_keys_and_suspended_users_stop_at_once(client: httpx.AsyncClient, sink: Sink,
                                                             runtime: Runtime) -> None:
    user_id = await signup_verified(client, sink, "owner@example.com")
    await signup_verified(client, sink, "other@example.com")
    session = bearer(await signin(client, "owner@example.com"))
    other = bearer(await signin(client, "other@example.com"))
    key = await new_key(client, session, "read")
    key_id = (await client.get("/api/v1/account/api-keys", headers=session)).json()["data"][0]["id"]
    assert (await client.get("/api/v1/account/api-keys", headers=other)).json()["data"] == []
    assert (await client.delete(f"/api/v1/account/api-keys/{key_id}", headers=other)).status_code == 404

    async with runtime.sessions() as s:
        user = await s.get(UserRow, user_id)
        assert user is not None
        user.status = "suspended"
        await s.commit()
    assert (await client.get("/api/v1/backtests", headers=key_header(key))).status_code == 403
    async with runtime.sessions() as s:
        user = await s.get(UserRow, user_id)
        assert user is not None
        user.status = "active"
        await s.commit()
    assert (await client.get("/api/v1/backtests", headers=key_header(key))).status_code == 200

    assert (await client.delete(f"/api/v1/account/api-keys/{key_id}", headers=session)).status_code == 204
    assert (await client.get("/api/v1/backtests", headers=key_header(key))).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=key_header(key))).status_code == 401
    assert (await client.delete(f"/api/v1/account/api-keys/{key_id}", headers=session)).status_code == 404
    assert (await client.get("/api/v1/backtests", headers=key_header("mpk_deadbeef_guess"))).status_code == 401


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "scopes": []}, "scopes"), ({"name": "x", "scopes": ["root"]}, "scopes"),
    ({"name": "", "scopes": ["read"]}, "name"), ({"name": "x" * 65, "scopes": ["read"]}, "name"),
])
async def test_bad_key_requests_name_the_field(client: httpx.AsyncClient, sink: Sink, body: dict[str, object],
                                               field: str) -> None:
    await signup_verified(client, sink, "fields@example.com")
    resp = await client.post("/api/v1/account/api-keys", json=body,
                             headers=bearer(await signin(client, "fields@example.com")))
    assert resp.status_code == 422 and field in {str(e["loc"][1]) for e in resp.json()["detail"]}
