"""The credits API: your balance and history; administrators grant and adjust (audited); 402 for an action that
needs credits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from marketpulse.accounts.audit import AuditQuery
from marketpulse.accounts.core import Role
from marketpulse.api.app import create_app
from marketpulse.credits.core import InsufficientCredits
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

STRONG = "Correct-Horse-9-battery"


@pytest.fixture
def settings(db_url: str, tmp_path: Any) -> Settings:
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key",
                    jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!")


@pytest.fixture
async def client(runtime: Runtime) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as c:
        yield c


async def session_of(runtime: Runtime, email: str, role: Role = Role.USER) -> tuple[str, dict[str, str]]:
    accounts = runtime.services.accounts
    user = await accounts.create_user(email, STRONG, role=role, verified=True)
    tokens = await accounts.start_session(user)
    return user.id, {"Authorization": f"Bearer {tokens.access_token}"}


async def test_admins_grant_and_adjust_users_see_balance_and_history(client: httpx.AsyncClient,
                                                                      runtime: Runtime) -> None:
    admin_id, admin = await session_of(runtime, "root@example.com", Role.ADMIN)
    user_id, user = await session_of(runtime, "user@example.com")
    empty = await client.get("/api/v1/account/credits", headers=user)
    assert empty.status_code == 200 and empty.json()["balance"] == 0 and empty.json()["data"] == []
    granted = await client.post(f"/api/v1/admin/users/{user_id}/credits", headers=admin,
                                json={"amount": 50, "kind": "grant", "reason": "beta tester"})
    assert granted.status_code == 201, granted.text
    assert granted.json()["balance"] == 50 and granted.json()["entry"]["kind"] == "grant"
    adjusted = await client.post(f"/api/v1/admin/users/{user_id}/credits", headers=admin,
                                 json={"amount": -20, "kind": "adjustment", "reason": "double grant"})
    assert adjusted.json()["balance"] == 30
    too_far = await client.post(f"/api/v1/admin/users/{user_id}/credits", headers=admin,
                                json={"amount": -31, "kind": "adjustment", "reason": "oops"})
    assert too_far.status_code == 422 and too_far.json()["detail"][0]["loc"] == ["body", "amount"]
    mine = (await client.get("/api/v1/account/credits?limit=1", headers=user)).json()
    assert mine["balance"] == 30 and mine["total"] == 2
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in mine["data"]] == [("adjustment", -20, 30)]
    entries, _ = await runtime.services.accounts.audit.search(AuditQuery(target_id=user_id))
    assert [(e.action, e.actor_id, e.new_values["balance"] if e.new_values else None) for e in entries] == [
        ("admin.credits_adjusted", admin_id, 30), ("admin.credits_granted", admin_id, 50)]


async def test_only_admins_grant_and_only_to_users_that_exist(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, admin = await session_of(runtime, "root@example.com", Role.ADMIN)
    user_id, user = await session_of(runtime, "user@example.com")
    body = {"amount": 5, "kind": "grant", "reason": "free money"}
    assert (await client.post(f"/api/v1/admin/users/{user_id}/credits", headers=user, json=body)).status_code == 403
    assert (await client.post("/api/v1/admin/users/nobody/credits", headers=admin, json=body)).status_code == 404
    assert (await client.get("/api/v1/account/credits")).status_code == 401
    runtime.settings.admin_allowed_ips = "192.0.2.0/24"  # the admin API's address allowlist covers this route too
    walled = await client.post(f"/api/v1/admin/users/{user_id}/credits", headers=admin, json=body)
    assert walled.status_code == 403 and walled.json()["detail"]["reason"] == "address_not_allowed"
    runtime.settings.admin_allowed_ips = ""
    for bad in ({**body, "kind": "usage"}, {**body, "amount": 0}, {**body, "amount": -5}, {**body, "reason": ""}):
        resp = await client.post(f"/api/v1/admin/users/{user_id}/credits", headers=admin, json=bad)
        assert resp.status_code == 422, bad


async def test_an_action_short_of_credits_answers_402_with_balance_and_cost(runtime: Runtime) -> None:
    from marketpulse.api.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/needs-credits")
    async def needs_credits() -> None:
        raise InsufficientCredits(balance=2, cost=5)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        resp = await client.post("/needs-credits")
    assert resp.status_code == 402
    assert resp.json()["detail"] | {"message": ""} == {"reason": "insufficient_credits", "balance": 2, "cost": 5,
                                                       "message": ""}


async def test_the_plan_table_serves_the_channel_credit_costs(client: httpx.AsyncClient) -> None:
    costs = (await client.get("/api/v1/plans")).json()["channel_credit_costs"]
    assert costs["sms"] == 5 and costs["email"] == 1 and costs["in_app"] == 0
