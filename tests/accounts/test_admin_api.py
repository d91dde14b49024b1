"""The admin API: only administrators, users found by search and filters, plan/status/role changes that take
effect at once, and an audit log of every change that the database itself refuses to rewrite."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from marketpulse.accounts.audit import AuditQuery
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime

from .conftest import STRONG, Sink, bearer, signed_in_admin, signin, signup_verified

DAY = 86_400_000


async def _audit(client: httpx.AsyncClient, admin: str, **params: Any) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/admin/audit-log", params=params, headers={"Authorization": admin})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["data"])


async def test_admin_routes_refuse_everyone_but_admins(client: httpx.AsyncClient, sink: Sink) -> None:
    user_id = await signup_verified(client, sink, "plain@example.com")
    plain = bearer(await signin(client, "plain@example.com"))
    routes = [("GET", "/api/v1/admin/users", None), ("GET", f"/api/v1/admin/users/{user_id}", None),
              ("PATCH", f"/api/v1/admin/users/{user_id}", {"plan": "elite"}),
              ("DELETE", f"/api/v1/admin/users/{user_id}", None),
              ("POST", f"/api/v1/admin/users/{user_id}/signout", None),
              ("POST", f"/api/v1/admin/users/{user_id}/password-reset", None),
              ("GET", "/api/v1/admin/audit-log", None)]
    for method, path, body in routes:
        assert (await client.request(method, path, json=body)).status_code == 401, path
        resp = await client.request(method, path, json=body, headers=plain)
        assert resp.status_code == 403 and resp.json()["detail"]["reason"] == "admin_only", path
    assert (await client.get("/api/v1/auth/me", headers=plain)).json()["plan"] == "free"  # nothing changed


async def test_users_are_listed_with_search_filters_and_paging(client: httpx.AsyncClient, runtime: Runtime,
                                                               clock: FakeClock) -> None:
    accounts = runtime.services.accounts
    start = clock.now_ms()
    for i, plan in enumerate(["free", "pro", "premium", "free"]):
        clock.advance(DAY)
        await accounts.create_user(f"trader{i}@Desk.example", STRONG, plan=plan)
    admin = await signed_in_admin(client, runtime)  # signed in now: a token from days ago would have expired

    async def users(**params: Any) -> tuple[list[str], int]:
        resp = await client.get("/api/v1/admin/users", params=params, headers={"Authorization": admin})
        assert resp.status_code == 200, resp.text
        return [u["email"] for u in resp.json()["data"]], resp.json()["total"]

    assert await users(q="DESK") == (["trader3@Desk.example", "trader2@Desk.example", "trader1@Desk.example",
                                      "trader0@Desk.example"], 4)
    assert await users(plan="premium") == (["trader2@Desk.example"], 1)  # premium is elite
    assert await users(plan="free", role="user") == (["trader3@Desk.example", "trader0@Desk.example"], 2)
    assert await users(role="admin") == (["root@example.com"], 1)
    assert (await users(signed_up_from=start + 2 * DAY, signed_up_to=start + 4 * DAY))[0] == [
        "trader2@Desk.example", "trader1@Desk.example"]
    page = await users(q="desk", limit=3, offset=3)
    assert page == (["trader0@Desk.example"], 4)
    bad = await client.get("/api/v1/admin/users", params={"plan": "gold", "limit": 0}, headers={"Authorization": admin})
    assert bad.status_code == 422 and {e["loc"][-1] for e in bad.json()["detail"]} == {"plan", "limit"}


async def test_a_plan_change_is_seen_at_once_and_audited_with_old_and_new(
    client: httpx.AsyncClient, sink: Sink, runtime: Runtime
) -> None:
    admin = await signed_in_admin(client, runtime)
    user_id = await signup_verified(client, sink, "climber@example.com")
    user = bearer(await signin(client, "climber@example.com"))
    resp = await client.patch(f"/api/v1/admin/users/{user_id}", json={"plan": "premium"},
                              headers={"Authorization": admin})
    assert resp.status_code == 200 and resp.json()["plan"] == "elite"
    assert (await client.get("/api/v1/auth/me", headers=user)).json()["plan"] == "elite"

    [entry] = await _audit(client, admin, action="admin.user_updated")
    admin_id = (await client.get("/api/v1/auth/me", headers={"Authorization": admin})).json()["id"]
    assert (entry["actor_id"], entry["target_id"], entry["old_values"], entry["new_values"]) == (
        admin_id, user_id, {"plan": "free"}, {"plan": "elite"})
    assert entry["client"] == "127.0.0.1"

    # The same value again changes nothing and records nothing.
    await client.patch(f"/api/v1/admin/users/{user_id}", json={"plan": "elite"}, headers={"Authorization": admin})
    assert len(await _audit(client, admin, action="admin.user_updated")) == 1


async def test_suspending_a_user_ends_their_sessions_at_once(client: httpx.AsyncClient, sink: Sink,
                                                             runtime: Runtime) -> None:
    admin = await signed_in_admin(client, runtime)
    user_id = await signup_verified(client, sink, "rogue@example.com")
    tokens = await signin(client, "rogue@example.com")
    resp = await client.patch(f"/api/v1/admin/users/{user_id}", json={"status": "suspended"},
                              headers={"Authorization": admin})
    assert resp.status_code == 200 and resp.json()["status"] == "suspended"
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code in (401, 403)
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            ).status_code == 401
    assert (await client.post("/api/v1/auth/signin", json={"email": "rogue@example.com", "password": STRONG})
            ).status_code == 403
    detail = (await client.get(f"/api/v1/admin/users/{user_id}", headers={"Authorization": admin})).json()
    assert detail["status"] == "suspended" and detail["sessions"] == []

    await client.patch(f"/api/v1/admin/users/{user_id}", json={"status": "active"}, headers={"Authorization": admin})
    await signin(client, "rogue@example.com")


async def test_bad_changes_and_unknown_users(client: httpx.AsyncClient, runtime: Runtime) -> None:
    admin = await signed_in_admin(client, runtime)
    me = (await client.get("/api/v1/auth/me", headers={"Authorization": admin})).json()
    auth = {"Authorization": admin}
    assert (await client.patch("/api/v1/admin/users/nobody", json={"plan": "pro"}, headers=auth)).status_code == 404
    assert (await client.get("/api/v1/admin/users/nobody", headers=auth)).status_code == 404
    assert (await client.delete("/api/v1/admin/users/nobody", headers=auth)).status_code == 404
    for body, field in [({}, None), ({"plan": "gold"}, "plan"), ({"status": "gone"}, "status"),
                        ({"role": "root"}, "role"), ({"email": "x@example.com"}, "email")]:
        resp = await client.patch(f"/api/v1/admin/users/{me['id']}", json=body, headers=auth)
        assert resp.status_code == 422, body
        if field:
            assert field in {e["loc"][-1] for e in resp.json()["detail"]}
    for body in ({"role": "user"}, {"status": "banned"}):  # an admin can't lock themselves out
        assert (await client.patch(f"/api/v1/admin/users/{me['id']}", json=body, headers=auth)).status_code == 409
    assert (await client.delete(f"/api/v1/admin/users/{me['id']}", headers=auth)).status_code == 409
    assert (await client.patch(f"/api/v1/admin/users/{me['id']}", json={"plan": "enterprise"}, headers=auth)
            ).json()["plan"] == "enterprise"


async def test_sign_out_everywhere_and_a_forced_password_reset(client: httpx.AsyncClient, sink: Sink,
                                                               runtime: Runtime, clock: FakeClock) -> None:
    admin = {"Authorization": await signed_in_admin(client, runtime)}
    user_id = await signup_verified(client, sink, "leaky@example.com")
    one, two = await signin(client, "leaky@example.com"), await signin(client, "leaky@example.com")
    resp = await client.post(f"/api/v1/admin/users/{user_id}/signout", headers=admin)
    assert resp.json() == {"sessions_ended": 2}
    for t in (one, two):
        assert (await client.get("/api/v1/auth/me", headers=bearer(t))).status_code == 401

    three = await signin(client, "leaky@example.com")
    assert (await client.post(f"/api/v1/admin/users/{user_id}/password-reset", headers=admin)).status_code == 202
    assert (await client.get("/api/v1/auth/me", headers=bearer(three))).status_code == 401
    assert (await client.post("/api/v1/auth/signin", json={"email": "leaky@example.com", "password": STRONG})
            ).status_code == 401
    clock.advance(1000)  # a failed sign-in makes this client wait a second before the next
    new = "Fresh-Start-2026!"
    reset = await client.post("/api/v1/auth/reset-password",
                              json={"token": sink.token("leaky@example.com"), "new_password": new})
    assert reset.status_code == 200
    await signin(client, "leaky@example.com", new)
    actions = [e["action"] for e in await _audit(client, admin["Authorization"], target_id=user_id)]
    assert actions == ["auth.password_reset", "auth.signin_failed", "admin.password_reset_forced",
                       "admin.user_signed_out"]


async def test_deleting_a_user_keeps_the_fact_not_the_address(client: httpx.AsyncClient, sink: Sink,
                                                              runtime: Runtime) -> None:
    admin = {"Authorization": await signed_in_admin(client, runtime)}
    user_id = await signup_verified(client, sink, "leaving@example.com")
    tokens = await signin(client, "leaving@example.com")
    assert (await client.delete(f"/api/v1/admin/users/{user_id}", headers=admin)).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens))).status_code == 401
    assert (await client.get(f"/api/v1/admin/users/{user_id}", headers=admin)).status_code == 404
    entries = await _audit(client, admin["Authorization"], action="admin.")
    assert [e["action"] for e in entries] == ["admin.user_deleted"]
    assert "leaving@example.com" not in str(entries)
    # The address is free again.
    assert (await client.post("/api/v1/auth/signup", json={"email": "leaving@example.com", "password": STRONG})
            ).status_code == 201


async def test_security_events_reach_the_audit_log(client: httpx.AsyncClient, sink: Sink, runtime: Runtime) -> None:
    admin = await signed_in_admin(client, runtime)
    user_id = await signup_verified(client, sink, "careful@example.com")
    tokens = await signin(client, "careful@example.com")
    await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})  # reuse
    fresh = await signin(client, "careful@example.com")
    await client.post("/api/v1/auth/change-password", headers=bearer(fresh),
                      json={"current_password": STRONG, "new_password": "Changed-Pass-99!"})
    entries = await _audit(client, admin, action="auth.")
    assert [e["action"] for e in entries] == ["auth.password_changed", "auth.refresh_reuse"]
    assert entries[0]["actor_id"] == user_id and "Changed-Pass-99!" not in str(entries)


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET action = 'nothing.happened'",
    "DELETE FROM audit_log",
])
async def test_the_database_refuses_to_rewrite_the_audit_log(runtime: Runtime, statement: str) -> None:
    audit = runtime.services.accounts.audit
    await audit.record("admin.user_updated", actor_id="a", target_type="user", target_id="b",
                       old={"plan": "free"}, new={"plan": "pro"})
    with pytest.raises(DBAPIError, match="append-only"):
        async with runtime.engine.begin() as conn:
            await conn.execute(text(statement))
    rows, total = await audit.search(AuditQuery())
    assert total == 1 and rows[0].action == "admin.user_updated"
    assert not hasattr(audit, "update") and not hasattr(audit, "delete")



async def test_metrics_count_users_sign_ups_per_day_and_live_sessions(client: httpx.AsyncClient, runtime: Runtime,
                                                                       clock: FakeClock) -> None:
    accounts = runtime.services.accounts
    await accounts.create_user("a@example.com", STRONG, plan="pro")
    clock.advance(DAY)
    await accounts.create_user("b@example.com", STRONG)
    await accounts.create_user("c@example.com", STRONG, plan="premium")
    admin = await signed_in_admin(client, runtime)
    m = (await client.get("/api/v1/admin/metrics", headers={"Authorization": admin})).json()
    assert m["users_by_plan"] == {"free": 2, "pro": 1, "elite": 1}
    assert m["users_by_status"] == {"active": 4} and m["users_by_role"] == {"user": 3, "admin": 1}
    assert m["active_sessions"] == 1
    assert len(m["signups_per_day"]) == 30 and m["signups_per_day"][-2:] == [
        {"day": "2025-10-10", "count": 1}, {"day": "2025-10-11", "count": 3}]


async def test_administrators_sessions_end_sooner(client: httpx.AsyncClient, sink: Sink, runtime: Runtime,
                                                  clock: FakeClock) -> None:
    runtime.settings.admin_refresh_token_ttl_s = 3_600
    await signed_in_admin(client, runtime)
    await signup_verified(client, sink, "worker@example.com")
    admin = await signin(client, "root@example.com")
    user = await signin(client, "worker@example.com")
    clock.advance(3_600_000)
    late = await client.post("/api/v1/auth/refresh", json={"refresh_token": admin["refresh_token"]})
    assert late.status_code == 401
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
            ).status_code == 200
