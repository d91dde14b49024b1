"""What the admin console needs beyond the user list: a user's keys and last activity, the platform's health, and
the optional address allowlist in front of the admin API and the /admin page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from marketpulse.accounts.core import Role
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

from .conftest import STRONG, Sink, bearer, signed_in_admin, signin, signup_verified


async def test_user_details_list_api_keys_and_the_last_activity(client: httpx.AsyncClient, sink: Sink,
                                                                runtime: Runtime, clock: FakeClock) -> None:
    admin = await signed_in_admin(client, runtime)
    user_id = await signup_verified(client, sink, "busy@example.com")
    fresh = await client.get(f"/api/v1/admin/users/{user_id}", headers={"Authorization": admin})
    assert fresh.json()["last_activity_ms"] is None and fresh.json()["api_keys"] == []

    user = bearer(await signin(client, "busy@example.com"))
    signed_in_at = clock.now_ms()
    made = await client.post("/api/v1/account/api-keys", json={"name": "bot", "scopes": ["read"]}, headers=user)
    assert made.status_code in (200, 201), made.text
    clock.advance(60_000)
    used = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {made.json()['key']}"})
    assert used.status_code == 200
    details = (await client.get(f"/api/v1/admin/users/{user_id}", headers={"Authorization": admin})).json()
    assert [(k["name"], k["scopes"]) for k in details["api_keys"]] == [("bot", ["read"])]
    assert "key" not in details["api_keys"][0] and "key_hash" not in details["api_keys"][0]
    assert details["last_activity_ms"] == signed_in_at + 60_000  # the key's use, newer than the sign-in
    assert len(details["sessions"]) == 1


async def test_health_reports_checks_dead_letters_and_uptime(client: httpx.AsyncClient, sink: Sink,
                                                             runtime: Runtime) -> None:
    admin = await signed_in_admin(client, runtime)
    assert isinstance(runtime.bus, MemoryBus)
    runtime.bus._dead[topics.ALERTS_VOLUME.name].append(object())  # type: ignore[arg-type]  # one dead letter
    resp = await client.get("/api/v1/admin/health", headers={"Authorization": admin})
    assert resp.status_code == 200, resp.text
    health = resp.json()
    assert health["status"] == "ok" and health["checks"] == {"database": "ok", "bus": "ok"}
    assert health["dead_letters"][topics.ALERTS_VOLUME.name] == 1
    assert health["dead_letters"][topics.MARKET_TICKERS.name] == 0
    assert health["uptime_s"] is not None and health["uptime_s"] >= 0
    await signup_verified(client, sink, "plain@example.com")
    plain = bearer(await signin(client, "plain@example.com"))
    assert (await client.get("/api/v1/admin/health", headers=plain)).status_code == 403


@pytest.fixture
async def guarded(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime.open(settings.model_copy(update={"admin_allowed_ips": "10.0.0.0/8, 2001:db8::1"}), clock=clock,
                      bus=MemoryBus())
    yield rt
    await rt.close()


def _client(app: Any, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40_000)),
                             base_url="http://127.0.0.1")


async def test_the_admin_allowlist_refuses_other_addresses_before_anything_else(guarded: Runtime) -> None:
    app = create_app(guarded)  # the whole app: the page, its static files and the API behind the Host check
    await guarded.services.accounts.create_user("root@example.com", STRONG, role=Role.ADMIN, verified=True)
    for address, allowed in [("10.1.2.3", True), ("::ffff:10.9.9.9", True), ("2001:db8::1", True),
                             ("127.0.0.1", False), ("192.168.1.10", False), ("2001:db8::2", False)]:
        async with _client(app, address) as c:
            admin = bearer(await signin(c, "root@example.com"))  # signing in itself is not the admin API
            users = await c.get("/api/v1/admin/users", headers=admin)
            anonymous = await c.get("/api/v1/admin/users")
            page = await c.get("/admin")
        if allowed:
            assert users.status_code == 200 and anonymous.status_code == 401, address
            assert page.status_code == 200 and "admin.js" in page.text, address
        else:
            for resp in (users, anonymous, page):
                assert resp.status_code == 403, (address, resp.status_code)
            assert users.json()["detail"]["reason"] == "address_not_allowed"


def test_a_bad_allowlist_entry_stops_the_settings_from_loading() -> None:
    with pytest.raises(ValueError, match="'10.0.0.300' is not an IP address or CIDR"):
        Settings(admin_allowed_ips="10.0.0.0/8,10.0.0.300")
    assert Settings(admin_allowed_ips="").admin_networks() == []


@pytest.mark.parametrize(("trusted", "allowed"), [(None, True), ("10.9.9.9", False)])
async def test_x_forwarded_for_counts_only_from_a_proxy_uvicorn_trusts(
    guarded: Runtime, monkeypatch: pytest.MonkeyPatch, trusted: str | None, allowed: bool
) -> None:
    """Under uvicorn (as `pulse api` runs), a request from 127.0.0.1 (its default trusted proxy) is judged by its
    X-Forwarded-For; once the trusted proxies are others, the same header is ignored and the peer's address counts."""
    from api.serving import serving

    if trusted is not None:
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", trusted)
    async with serving(create_app(guarded)) as url, httpx.AsyncClient(base_url=url) as c:
        direct = await c.get("/admin")
        forwarded = await c.get("/admin", headers={"X-Forwarded-For": "10.1.2.3"})
    assert direct.status_code == 403
    assert forwarded.status_code == (200 if allowed else 403)
