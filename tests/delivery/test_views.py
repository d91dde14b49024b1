"""The delivery API: destinations verified by a code sent over their channel, owner-scoped, gated by plan and
refused when a webhook points at our own network; the notification history; the admins' retry of dead ones."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from fakes.providers import FakeProviders
from marketpulse.accounts import views as account_views
from marketpulse.accounts.core import Role
from marketpulse.accounts.tables import UserRow
from marketpulse.api.errors import install_error_handlers
from marketpulse.delivery import views
from marketpulse.runtime import Runtime

from .helpers import dispatcher, notifications, notify

PASSWORD = "Correct-Horse-9-battery"


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(account_views.router)
    app.include_router(views.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def user(client: httpx.AsyncClient, runtime: Runtime, email: str, *, plan: str = "pro",
               role: Role = Role.USER) -> dict[str, str]:
    await runtime.services.accounts.create_user(email, PASSWORD, plan=plan, role=role, verified=True)
    resp = await client.post("/api/v1/auth/signin", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def test_a_webhook_destination_is_verified_by_the_code_it_was_sent(
        client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders) -> None:
    alice = await user(client, runtime, "alice@example.com")
    resp = await client.post("/api/v1/account/destinations", headers=alice,
                             json={"channel": "webhook", "address": fake.url("/hook/alice")})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert (created["state"], created["last_error"]) == ("pending", None)
    assert created["signing_secret"].startswith("whsec_")
    [sent] = fake.of("webhook")
    assert sent.json()["type"] == "verification"
    code = sent.json()["code"]
    wrong = await client.post(f"/api/v1/account/destinations/{created['id']}/verify", headers=alice,
                              json={"code": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"][-1] == "code"
    ok = await client.post(f"/api/v1/account/destinations/{created['id']}/verify", headers=alice, json={"code": code})
    assert ok.status_code == 200 and ok.json()["state"] == "verified"
    listed = (await client.get("/api/v1/account/destinations", headers=alice)).json()["data"]
    assert [(d["id"], d["state"], d["signing_secret"]) for d in listed] == [(created["id"], "verified", None)]


async def test_another_users_destination_is_404_and_stays(
        client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders) -> None:
    alice = await user(client, runtime, "alice@example.com")
    bob = await user(client, runtime, "bob@example.com")
    created = (await client.post("/api/v1/account/destinations", headers=alice,
                                 json={"channel": "telegram", "address": "4242"})).json()
    assert "Your code is" in fake.of("telegram")[0].json()["text"]
    for method, path, body in [("POST", f"/api/v1/account/destinations/{created['id']}/verify", {"code": "1"}),
                               ("DELETE", f"/api/v1/account/destinations/{created['id']}", None)]:
        resp = await client.request(method, path, headers=bob, json=body)
        assert resp.status_code == 404, resp.text
    assert (await client.get("/api/v1/account/destinations", headers=bob)).json()["data"] == []
    assert len((await client.get("/api/v1/account/destinations", headers=alice)).json()["data"]) == 1
    gone = await client.delete(f"/api/v1/account/destinations/{created['id']}", headers=alice)
    assert gone.status_code == 204


async def test_bad_addresses_name_the_field_and_plans_gate_channels(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    free = await user(client, runtime, "free@example.com", plan="free")
    for channel, address in [("email", "not-an-address"), ("sms", "0800 123"), ("telegram", "chat one"),
                             ("webhook", "ftp://example.com/x"), ("discord", "https://example.com/x")]:
        pro = await user(client, runtime, f"{channel}@example.com", plan="enterprise")
        resp = await client.post("/api/v1/account/destinations", headers=pro,
                                 json={"channel": channel, "address": address})
        assert resp.status_code == 422, (channel, resp.text)
        assert resp.json()["detail"][0]["loc"][-1] == "address"
    refused = await client.post("/api/v1/account/destinations", headers=free,
                                json={"channel": "telegram", "address": "4242"})
    assert refused.status_code == 403 and refused.json()["detail"]["field"] == "channel"
    in_app = await client.post("/api/v1/account/destinations", headers=free, json={"channel": "in_app"})
    assert in_app.status_code == 201 and in_app.json()["state"] == "verified"


async def test_webhooks_to_our_own_network_are_refused_unless_allowed(
        client: httpx.AsyncClient, runtime: Runtime) -> None:
    alice = await user(client, runtime, "alice@example.com")
    runtime.settings.webhook_allow_private = False
    for url in ("http://127.0.0.1:8000/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
                "http://[::1]/x", "http://localhost/x"):
        resp = await client.post("/api/v1/account/destinations", headers=alice,
                                 json={"channel": "webhook", "address": url})
        assert resp.status_code == 422, (url, resp.text)
        assert "address" in str(resp.json()["detail"][0]["loc"]) and "private" in resp.text


async def test_history_lists_the_users_notifications_and_admins_retry_dead_ones(
        client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders) -> None:
    from .helpers import add_destination

    alice = await user(client, runtime, "alice@example.com")
    admin = await user(client, runtime, "root@example.com", role=Role.ADMIN)
    alice_id = (await client.get("/api/v1/auth/me", headers=alice)).json()["id"]
    await add_destination(runtime, "d1", alice_id, address=fake.url("/hook/a"))
    await notify(runtime, alice_id, ["d1"], "e1")
    await notify(runtime, "someone-else", [], "e2")
    from fakes.providers import Fail

    fake.script("webhook", [Fail(404)])
    async with runtime.sessions.begin() as s:  # an instant plan: the free plan's 15-minute batch would hold it
        await s.execute(update(UserRow).where(UserRow.id == alice_id).values(plan="elite"))
    d = dispatcher(runtime)
    await d.run_once()
    history = (await client.get("/api/v1/account/notifications", headers=alice)).json()
    [item] = history["data"]
    assert (item["status"], item["attempts"], item["channel"], item["credits_charged"]) == ("dead", 1, "webhook", 0)
    assert item["error"].startswith("webhook: HTTP 404")
    assert (await client.post(f"/api/v1/admin/notifications/{item['id']}/retry", headers=alice)).status_code == 403
    from marketpulse.accounts import admin_views

    client._transport.app.include_router(admin_views.router)  # type: ignore[attr-defined]
    dead = (await client.get("/api/v1/admin/notifications?status=dead", headers=admin)).json()
    assert [n["id"] for n in dead["data"]] == [item["id"]]
    retried = await client.post(f"/api/v1/admin/notifications/{item['id']}/retry", headers=admin)
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    await d.run_once()
    await d.close()
    assert [r.status for r in await notifications(runtime)] == ["sent"]
    log = (await client.get("/api/v1/admin/audit-log?action=admin.notification_retried", headers=admin)).json()
    assert log["total"] == 1


async def test_the_notification_centre_counts_unread_in_app_ones_and_marks_them_read_owner_scoped(
        client: httpx.AsyncClient, runtime: Runtime, fake: FakeProviders) -> None:
    from .helpers import add_destination

    alice = await user(client, runtime, "alice@example.com")
    bob = await user(client, runtime, "bob@example.com")
    alice_id = (await client.get("/api/v1/auth/me", headers=alice)).json()["id"]
    bob_id = (await client.get("/api/v1/auth/me", headers=bob)).json()["id"]
    await add_destination(runtime, "app-a", alice_id, channel="in_app", address=alice_id)
    await add_destination(runtime, "hook-a", alice_id, address=fake.url("/hook/a"))
    await add_destination(runtime, "app-b", bob_id, channel="in_app", address=bob_id)
    for event in ("e1", "e2", "e3"):
        await notify(runtime, alice_id, ["app-a", "hook-a"], event)
    await notify(runtime, bob_id, ["app-b"], "b1")
    d = dispatcher(runtime)
    await d.run_once()
    await d.close()

    centre = (await client.get("/api/v1/account/notifications?channel=in_app", headers=alice)).json()
    assert centre["total"] == 3 and centre["unread"] == 3  # the webhook copies aren't the bell's
    assert {n["channel"] for n in centre["data"]} == {"in_app"}
    assert [n["title"] for n in centre["data"]] == ["alert e3", "alert e2", "alert e1"]  # newest first
    ids = [n["id"] for n in centre["data"]]
    bobs = (await client.get("/api/v1/account/notifications?channel=in_app", headers=bob)).json()
    bob_note = bobs["data"][0]["id"]

    # Bob's id in Alice's request: 404, and none of hers is marked either
    mixed = await client.post("/api/v1/account/notifications/read", headers=alice, json={"ids": [ids[0], bob_note]})
    assert mixed.status_code == 404
    one = await client.post("/api/v1/account/notifications/read", headers=alice, json={"ids": [ids[0]]})
    assert one.status_code == 200 and one.json() == {"marked": 1}
    again = await client.post("/api/v1/account/notifications/read", headers=alice, json={"ids": [ids[0]]})
    assert again.json() == {"marked": 0}  # already read
    after = (await client.get("/api/v1/account/notifications?channel=in_app&unread=true", headers=alice)).json()
    assert after["unread"] == 2 and [n["id"] for n in after["data"]] == ids[1:]
    assert after["data"][0]["read_at_ms"] is None

    everything = await client.post("/api/v1/account/notifications/read", headers=alice, json={"all": True})
    assert everything.json() == {"marked": 2}
    assert (await client.get("/api/v1/account/notifications", headers=alice)).json()["unread"] == 0
    assert (await client.get("/api/v1/account/notifications", headers=bob)).json()["unread"] == 1  # Bob's untouched


@pytest.mark.parametrize("body", [{}, {"ids": []}, {"ids": [1], "all": True}, {"all": False}, {"ids": ["x"]},
                                  {"ids": [1], "extra": 1}])
async def test_marking_read_needs_ids_or_all(client: httpx.AsyncClient, runtime: Runtime,
                                             body: dict[str, object]) -> None:
    alice = await user(client, runtime, "alice@example.com")
    resp = await client.post("/api/v1/account/notifications/read", headers=alice, json=body)
    assert resp.status_code == 422, resp.text
