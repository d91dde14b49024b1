"""Watchlists and volume-alert subscriptions over HTTP: signed-in only, each user's own rows only (another user's
ids answer 404), symbols normalised or refused with a 422 naming the field, and the plan table's limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from accounts.conftest import STRONG, bearer, signin  # noqa: I001 (tests/accounts)
from marketpulse.runtime import Runtime

WL = "/api/v1/watchlist"
SUBS = "/api/v1/volume-alerts/subscriptions"


async def user(client: httpx.AsyncClient, runtime: Runtime, email: str, plan: str = "free") -> dict[str, str]:
    await runtime.services.accounts.create_user(email, STRONG, plan=plan, verified=True)
    return bearer(await signin(client, email))


def error_fields(resp: httpx.Response) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in resp.json()["detail"]]


async def test_a_watchlist_is_created_filled_emptied_renamed_and_deleted(client: httpx.AsyncClient,
                                                                         runtime: Runtime) -> None:
    me = await user(client, runtime, "lists@example.com")
    made = await client.post(WL, json={"name": " Majors ", "symbols": ["btc-usdt", "ETHUSDT", "BTCUSDT"]},
                             headers=me)
    assert made.status_code == 201, made.text
    wl = made.json()
    assert (wl["name"], wl["symbols"]) == ("Majors", ["BTCUSDT", "ETHUSDT"])
    path = f"{WL}/{wl['id']}"

    one = await client.post(f"{path}/items", json={"symbol": "sol_usdt"}, headers=me)
    assert one.status_code == 200 and one.json()["symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    many = await client.post(f"{path}/items", json={"symbols": ["DOGEUSDT", "ETHUSDT", "1000PEPEUSDT"]}, headers=me)
    assert many.json()["symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "1000PEPEUSDT"]

    by_query = await client.delete(f"{path}/items", params={"symbol": "ethusdt"}, headers=me)
    assert by_query.status_code == 200 and "ETHUSDT" not in by_query.json()["symbols"]
    by_body = await client.request("DELETE", f"{path}/items", json={"symbols": ["BTCUSDT", "XRPUSDT"]}, headers=me)
    assert by_body.json()["symbols"] == ["SOLUSDT", "DOGEUSDT", "1000PEPEUSDT"]
    single = await client.request("DELETE", f"{path}/items", json={"symbol": "DOGEUSDT"}, headers=me)
    assert single.json()["symbols"] == ["SOLUSDT", "1000PEPEUSDT"]

    renamed = await client.patch(path, json={"name": "Memes", "symbols": ["WIFUSDT"]}, headers=me)
    assert renamed.status_code == 200 and (renamed.json()["name"], renamed.json()["symbols"]) == ("Memes", ["WIFUSDT"])
    listed = await client.get(WL, headers=me)
    assert listed.status_code == 200
    assert [(w["name"], w["symbols"]) for w in listed.json()["data"]] == [("Memes", ["WIFUSDT"])]
    assert (listed.json()["limit"], listed.json()["symbols_limit"]) == (3, 20)
    assert (await client.get(path, headers=me)).json()["symbols"] == ["WIFUSDT"]

    assert (await client.delete(path, headers=me)).status_code == 204
    assert (await client.get(path, headers=me)).status_code == 404
    assert (await client.get(WL, headers=me)).json()["data"] == []


async def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(client: httpx.AsyncClient,
                                                                        runtime: Runtime) -> None:
    me = await user(client, runtime, "careful@example.com")
    wl = (await client.post(WL, json={"name": "Mine", "symbols": ["BTCUSDT"]}, headers=me)).json()
    path = f"{WL}/{wl['id']}"
    cases = [
        ("POST", WL, {"name": "x", "symbols": ["BTCUSDT", "BTCUSD"]}, None, ("body", "symbols", 1)),
        ("POST", WL, {"name": "   "}, None, ("body", "name")),
        ("POST", WL, {"symbols": ["BTCUSDT"]}, None, ("body", "name")),
        ("POST", f"{path}/items", {"symbol": "<script>USDT"}, None, ("body", "symbol")),
        ("POST", f"{path}/items", {"symbols": ["ETHUSDT", "EUR"]}, None, ("body", "symbols", 1)),
        ("DELETE", f"{path}/items", None, {"symbol": "not a symbol"}, ("query", "symbol")),
        ("DELETE", f"{path}/items", None, None, ("query", "symbol")),
        ("PATCH", path, {"symbols": ["ETH"]}, None, ("body", "symbols", 0)),
    ]
    for method, url, body, params, loc in cases:
        resp = await client.request(method, url, json=body, params=params, headers=me)
        assert resp.status_code == 422, (method, url, body, resp.text)
        assert any(found[:len(loc)] == loc for found in error_fields(resp)), (loc, resp.text)
    taken = await client.post(WL, json={"name": "Mine"}, headers=me)
    assert taken.status_code == 422 and error_fields(taken) == [("body", "name")]
    assert (await client.get(path, headers=me)).json()["symbols"] == ["BTCUSDT"]
    assert len((await client.get(WL, headers=me)).json()["data"]) == 1


async def test_another_users_watchlist_and_subscription_answer_404(client: httpx.AsyncClient,
                                                                    runtime: Runtime) -> None:
    alice = await user(client, runtime, "alice@example.com", plan="pro")
    bob = await user(client, runtime, "bob@example.com", plan="pro")
    wl = (await client.post(WL, json={"name": "Alice's", "symbols": ["BTCUSDT"]}, headers=alice)).json()
    sub = (await client.post(SUBS, json={"symbol": "BTCUSDT"}, headers=alice)).json()
    path = f"{WL}/{wl['id']}"
    for method, url, body in [("GET", path, None), ("PATCH", path, {"name": "Bob's now"}), ("DELETE", path, None),
                              ("POST", f"{path}/items", {"symbol": "ETHUSDT"}),
                              ("DELETE", f"{path}/items", {"symbol": "BTCUSDT"}),
                              ("DELETE", f"{SUBS}/{sub['id']}", None)]:
        resp = await client.request(method, url, json=body, headers=bob)
        assert resp.status_code == 404, (method, url, resp.text)
    assert (await client.get(WL, headers=bob)).json()["data"] == []
    assert (await client.get(SUBS, headers=bob)).json()["data"] == []
    mine = await client.get(path, headers=alice)
    assert (mine.json()["name"], mine.json()["symbols"]) == ("Alice's", ["BTCUSDT"])
    assert [s["symbol"] for s in (await client.get(SUBS, headers=alice)).json()["data"]] == ["BTCUSDT"]


async def test_every_route_needs_a_signed_in_user(client: httpx.AsyncClient, runtime: Runtime) -> None:
    for method, url in [("GET", WL), ("POST", WL), ("GET", f"{WL}/x"), ("PATCH", f"{WL}/x"), ("DELETE", f"{WL}/x"),
                        ("POST", f"{WL}/x/items"), ("DELETE", f"{WL}/x/items"), ("GET", SUBS), ("POST", SUBS),
                        ("DELETE", f"{SUBS}/x")]:
        assert (await client.request(method, url, json={"name": "a"})).status_code == 401, (method, url)


async def test_a_cookie_session_must_echo_the_csrf_token_to_change_anything(client: httpx.AsyncClient,
                                                                           runtime: Runtime) -> None:
    await runtime.services.accounts.create_user("browser@example.com", STRONG, verified=True)
    resp = await client.post("/api/v1/auth/signin", json={"email": "browser@example.com", "password": STRONG})
    assert resp.status_code == 200
    assert (await client.post(WL, json={"name": "forged"})).status_code == 403
    csrf = {"X-CSRF-Token": client.cookies["mp_csrf"]}
    assert (await client.post(WL, json={"name": "mine"}, headers=csrf)).status_code == 201
    assert [w["name"] for w in (await client.get(WL)).json()["data"]] == ["mine"]


async def test_the_plan_table_limits_watchlists_and_their_symbols(client: httpx.AsyncClient,
                                                                  runtime: Runtime) -> None:
    me = await user(client, runtime, "frugal@example.com")  # free: 3 watchlists of 20 symbols
    for i in range(3):
        assert (await client.post(WL, json={"name": f"list {i}"}, headers=me)).status_code == 201
    fourth = await client.post(WL, json={"name": "list 3"}, headers=me)
    assert fourth.status_code == 403
    assert fourth.json()["detail"]["reason"] == "plan_limit" and fourth.json()["detail"]["field"] == "name"
    assert "free plan keeps at most 3 watchlists" in fourth.json()["detail"]["message"]

    first = (await client.get(WL, headers=me)).json()["data"][0]["id"]
    twenty = [f"C{i:02d}USDT" for i in range(20)]
    assert (await client.post(f"{WL}/{first}/items", json={"symbols": twenty}, headers=me)).status_code == 200
    again = await client.post(f"{WL}/{first}/items", json={"symbols": twenty[:5]}, headers=me)
    assert again.status_code == 200  # already there: nothing added, nothing over the limit
    over = await client.post(f"{WL}/{first}/items", json={"symbol": "BTCUSDT"}, headers=me)
    assert over.status_code == 403 and over.json()["detail"]["field"] == "symbol"
    too_big = await client.post(WL, json={"name": "big", "symbols": [*twenty, "BTCUSDT"]}, headers=me)
    assert too_big.status_code == 403
    assert len((await client.get(f"{WL}/{first}", headers=me)).json()["symbols"]) == 20

    user_id = (await client.get("/api/v1/auth/me", headers=me)).json()["id"]
    async with runtime.sessions() as s:  # an upgrade (the admin's PATCH does this) lifts the limit at once
        from marketpulse.accounts.tables import UserRow

        (await s.get(UserRow, user_id)).plan = "pro"  # type: ignore[union-attr]
        await s.commit()
    assert (await client.post(WL, json={"name": "list 3"}, headers=me)).status_code == 201
    assert (await client.post(f"{WL}/{first}/items", json={"symbol": "BTCUSDT"}, headers=me)).status_code == 200


async def test_subscriptions_are_for_pro_and_up(client: httpx.AsyncClient, runtime: Runtime) -> None:
    free = await user(client, runtime, "free@example.com")
    for method, body in [("GET", None), ("POST", {"symbol": "BTCUSDT"})]:
        refused = await client.request(method, SUBS, json=body, headers=free)
        assert refused.status_code == 403, refused.text
        detail = refused.json()["detail"]
        assert detail["reason"] == "plan_required" and detail["plan"] == "pro"
        assert "pro plan" in detail["message"] and "your plan is free" in detail["message"]

    pro = await user(client, runtime, "pro@example.com", plan="pro")
    btc = await client.post(SUBS, json={"symbol": "btc-usdt"}, headers=pro)
    assert btc.status_code == 201 and btc.json()["symbol"] == "BTCUSDT"
    twice = await client.post(SUBS, json={"symbol": "BTCUSDT"}, headers=pro)
    assert twice.status_code == 200 and twice.json()["id"] == btc.json()["id"]
    every = await client.post(SUBS, json={"symbol": "*"}, headers=pro)
    assert every.status_code == 201 and every.json()["symbol"] == "*"
    bad = await client.post(SUBS, json={"symbol": "BTC"}, headers=pro)
    assert bad.status_code == 422 and error_fields(bad) == [("body", "symbol")]
    listed = (await client.get(SUBS, headers=pro)).json()
    assert [s["symbol"] for s in listed["data"]] == ["*", "BTCUSDT"] and listed["limit"] == 50
    assert (await client.delete(f"{SUBS}/{btc.json()['id']}", headers=pro)).status_code == 204
    assert (await client.delete(f"{SUBS}/{btc.json()['id']}", headers=pro)).status_code == 404
    assert [s["symbol"] for s in (await client.get(SUBS, headers=pro)).json()["data"]] == ["*"]


@pytest.mark.parametrize("scopes", [["read"], ["read", "trade"]])
async def test_an_api_key_reads_with_read_and_changes_with_trade(client: httpx.AsyncClient, runtime: Runtime,
                                                                 scopes: list[str]) -> None:
    me = await user(client, runtime, "keys@example.com")
    made = await client.post("/api/v1/account/api-keys", json={"name": "bot", "scopes": scopes}, headers=me)
    assert made.status_code in (200, 201), made.text
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await client.get(WL, headers=key)).status_code == 200
    created = await client.post(WL, json={"name": "by key"}, headers=key)
    assert created.status_code == (201 if "trade" in scopes else 403)


async def test_export_lists_watchlists_and_erasure_removes_them(client: httpx.AsyncClient, runtime: Runtime) -> None:
    me = await user(client, runtime, "leaving@example.com", plan="pro")
    await client.post(WL, json={"name": "Keep", "symbols": ["BTCUSDT"]}, headers=me)
    await client.post(SUBS, json={"symbol": "*"}, headers=me)
    export = (await client.get("/api/v1/account/export", headers=me)).json()["owned"]
    assert [w["name"] for w in export["watchlists"]] == ["Keep"]
    assert [i["symbol"] for i in export["watchlist_items"]] == ["BTCUSDT"]
    assert [s["symbol"] for s in export["volume_alert_subscriptions"]] == ["*"]
    erased = await client.request("DELETE", "/api/v1/account", json={"password": STRONG}, headers=me)
    assert erased.status_code in (200, 204), erased.text
    async with runtime.sessions() as s:
        from sqlalchemy import func, select

        from marketpulse.watchlists.tables import VolumeAlertSubscriptionRow, WatchlistItemRow, WatchlistRow

        for table in (WatchlistRow, WatchlistItemRow, VolumeAlertSubscriptionRow):
            assert (await s.execute(select(func.count()).select_from(table))).scalar_one() == 0
