"""`current_owner`: the signed-in user by Bearer token, API key or the browser's cookie; the cookie changes
nothing without the CSRF header (double submit); without credentials the answer is 401, never a shared owner."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import save_candles
from marketpulse.runtime import Runtime
from support.accounts import STRONG

T0 = 1_760_126_400_000
ORDER = {"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.01, "limit_price": 50.0}


@pytest.fixture
async def browser(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client that signs in like the browser does: through /api/v1/auth/signin, keeping its cookies."""
    await save_candles(runtime.sessions, "test", [Candle("BTCUSDT", "1m", T0 - 60_000, 100, 100, 100, 100, 1, 100)])
    await runtime.services.accounts.create_user("web@example.com", STRONG, plan="pro", verified=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as c:
        signed_in = await c.post("/api/v1/auth/signin", json={"email": "web@example.com", "password": STRONG})
        assert signed_in.status_code == 200, signed_in.text
        assert {"mp_access", "mp_csrf"} <= set(c.cookies.keys())
        yield c


async def test_the_session_cookie_reads_freely_and_writes_only_with_the_csrf_header(
    browser: httpx.AsyncClient
) -> None:
    assert (await browser.get("/api/v1/paper/account")).status_code == 200  # a read needs no CSRF header
    forged = await browser.post("/api/v1/paper/orders", json=ORDER)  # what another site's form could send
    assert forged.status_code == 403 and forged.json()["detail"]["reason"] == "csrf"
    wrong = await browser.post("/api/v1/paper/orders", json=ORDER, headers={"X-CSRF-Token": "guessed"})
    assert wrong.status_code == 403
    assert (await browser.get("/api/v1/paper/orders")).json()["data"] == []  # nothing was placed
    csrf = browser.cookies["mp_csrf"]
    placed = await browser.post("/api/v1/paper/orders", json=ORDER, headers={"X-CSRF-Token": csrf})
    assert placed.status_code == 201, placed.text
    cancelled = await browser.delete(f"/api/v1/paper/orders/{placed.json()['id']}", headers={"X-CSRF-Token": csrf})
    assert cancelled.status_code == 200


async def test_no_credentials_is_401_not_a_shared_owner(browser: httpx.AsyncClient) -> None:
    browser.cookies.clear()
    for method, path in (("GET", "/api/v1/paper/account"), ("POST", "/api/v1/paper/orders"),
                         ("GET", "/api/v1/backtests")):
        resp = await browser.request(method, path, json=ORDER if method == "POST" else None)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer", (method, path)


async def test_an_api_key_needs_the_trade_scope_to_change_things(browser: httpx.AsyncClient) -> None:
    csrf = {"X-CSRF-Token": browser.cookies["mp_csrf"]}
    keys = {}
    for scopes in (["read"], ["read", "trade"]):
        made = await browser.post("/api/v1/account/api-keys", json={"name": "bot", "scopes": scopes}, headers=csrf)
        assert made.status_code == 201, made.text
        keys[len(scopes)] = {"Authorization": f"Bearer {made.json()['key']}"}
    browser.cookies.clear()
    assert (await browser.get("/api/v1/paper/account", headers=keys[1])).status_code == 200
    refused = await browser.post("/api/v1/paper/orders", json=ORDER, headers=keys[1])
    assert refused.status_code == 403 and refused.json()["detail"]["scope"] == "trade"
    assert (await browser.post("/api/v1/paper/orders", json=ORDER, headers=keys[2])).status_code == 201
