"""Admin signal configs (CRUD, UT Bot fields, duplicates, audit without the token) and users' subscriptions (plan
limits from the plan table, their own destinations only, another user's subscription is 404) and history."""

from __future__ import annotations

import httpx
import pytest

from marketpulse.runtime import Runtime

from .conftest import CONFIGS, admin, config, destination, user

pytestmark = pytest.mark.asyncio
SUBS = "/api/v1/signals/subscriptions"


async def test_config_crud_with_the_seeds_ut_bot_fields(client: httpx.AsyncClient, runtime: Runtime) -> None:
    auth = await admin(client, runtime)
    made = await config(client, auth, multiplier=3.7, ema_period=9, key_value=None)
    assert (made["symbol"], made["timeframe"], made["strategy"]) == ("BTCUSDT", "1h", "ut_bot")
    assert made["parameters"] == {"key_value": 3.7, "atr_period": 10, "ema_period": 9, "heikin_ashi": False,
                                  "mode": "alerts"}
    assert made["webhook_url"] == f"https://signals.example.com/webhook/tradingview/{made['token']}"
    assert len(made["token"]) >= 32 and made["webhook_url"] in made["pine"] and "//@version=5" in made["pine"]
    cid = made["id"]
    assert [c["id"] for c in (await client.get(CONFIGS, headers=auth)).json()["data"]] == [cid]
    patched = await client.patch(f"{CONFIGS}/{cid}", json={"multiplier": 2.5, "heikin_ashi": True}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["parameters"]["key_value"], patched.json()["parameters"]["heikin_ashi"],
            patched.json()["parameters"]["ema_period"]) == (2.5, True, 9)
    assert patched.json()["token"] == made["token"]
    audit = (await client.get("/api/v1/admin/audit-log", params={"target_id": cid}, headers=auth)).json()
    assert {e["action"] for e in audit["data"]} == {"signal_config.created", "signal_config.updated"}
    assert made["token"] not in str(audit)
    assert (await client.delete(f"{CONFIGS}/{cid}", headers=auth)).status_code == 204
    assert (await client.get(f"{CONFIGS}/{cid}", headers=auth)).status_code == 404


async def test_other_strategies_and_refusals(client: httpx.AsyncClient, runtime: Runtime) -> None:
    auth = await admin(client, runtime)
    ema = await config(client, auth, strategy="ema_cross", fast=5, slow=30, key_value=None, atr_period=None)
    assert ema["parameters"]["fast"] == 5 and "alert(" in ema["pine"]
    again = await client.post(CONFIGS, json={"symbol": "BTCUSDT", "timeframe": "1h", "strategy": "ema_cross",
                                             "fast": 5, "slow": 30}, headers=auth)
    assert again.status_code == 409 and again.json()["detail"]["existing_id"] == ema["id"]
    for body, field in (({"atr_period": 0}, "atr_period"), ({"strategy": "moon"}, "strategy"),
                        ({"timeframe": "7m"}, "timeframe"), ({"symbol": "{{ticker}}"}, "symbol"),
                        ({"multiplier": 3.7, "key_value": 2}, "multiplier"), ({"ema_period": 0}, "ema_period")):
        resp = await client.post(CONFIGS, json={"symbol": "BTCUSDT", "timeframe": "1h"} | body, headers=auth)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.json()["detail"][0]["loc"][-1] == field, (body, resp.json())


async def test_configs_are_for_administrators(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, auth = await user(client, runtime, "ana@example.com")
    assert (await client.get(CONFIGS, headers=auth)).status_code == 403
    assert (await client.post(CONFIGS, json={"symbol": "BTCUSDT", "timeframe": "1h"}, headers=auth)).status_code == 403
    assert (await client.get(CONFIGS)).status_code == 401
    assert (await client.get("/api/v1/admin/signals/rejected", headers=auth)).status_code == 403


async def test_subscriptions_follow_the_plan_and_the_owner(client: httpx.AsyncClient, runtime: Runtime) -> None:
    auth = await admin(client, runtime)
    first, second = await config(client, auth), await config(client, auth, atr_period=20)
    ana, ana_auth = await user(client, runtime, "ana@example.com", plan="free")
    _, bob_auth = await user(client, runtime, "bob@example.com")
    email = await destination(runtime, ana)
    browse = (await client.get("/api/v1/signals/configs", headers=ana_auth)).json()["data"]
    assert {c["id"] for c in browse} == {first["id"], second["id"]} and "token" not in browse[0]
    made = await client.post(SUBS, json={"config_id": first["id"], "channels": [email]}, headers=ana_auth)
    assert made.status_code == 201, made.text
    # The free plan allows one subscription (accounts/plans.py) and delivers by email only.
    limit = await client.post(SUBS, json={"config_id": second["id"], "channels": [email]}, headers=ana_auth)
    assert limit.status_code == 409 and limit.json()["detail"]["limit"] == 1
    twice = await client.post(SUBS, json={"config_id": first["id"], "channels": [email]}, headers=bob_auth)
    assert twice.status_code == 422 and twice.json()["detail"][0]["loc"] == ["body", "channels", 0]
    sms = await destination(runtime, ana, "sms")
    sid = made.json()["id"]
    bad = await client.patch(f"{SUBS}/{sid}", json={"channels": [sms]}, headers=ana_auth)
    assert bad.status_code == 422 and "sms" in bad.json()["detail"][0]["msg"]
    assert (await client.patch(f"{SUBS}/{sid}", json={"active": False}, headers=bob_auth)).status_code == 404
    assert (await client.delete(f"{SUBS}/{sid}", headers=bob_auth)).status_code == 404
    assert (await client.get(SUBS, headers=bob_auth)).json()["data"] == []
    paused = await client.patch(f"{SUBS}/{sid}", json={"active": False}, headers=ana_auth)
    assert paused.json()["active"] is False
    unknown = await client.post(SUBS, json={"config_id": "nope", "channels": [email]}, headers=bob_auth)
    assert unknown.status_code == 404
    assert (await client.delete(f"{SUBS}/{sid}", headers=ana_auth)).status_code == 204
    assert (await client.get(SUBS, headers=ana_auth)).json()["data"] == []


async def test_a_configs_backtest_over_the_last_year(client: httpx.AsyncClient, runtime: Runtime) -> None:
    auth = await admin(client, runtime)
    made = await config(client, auth, symbol="BTCUSDT", timeframe="1h")
    _, user_auth = await user(client, runtime, "ana@example.com")
    resp = await client.get(f"/api/v1/signals/configs/{made['id']}/backtest", headers=user_auth)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    now = runtime.market_now_ms()
    assert now - 365 * 86_400_000 <= got["start"] < got["end"] < now
    assert got["bars"] >= 72 and got["trades"] >= 1  # the bundled sample: days of real BTCUSDT hours before now
    assert 0 <= got["win_rate"] <= 1 and got["source"]
    nowhere = await config(client, auth, symbol="ZZZUSDT")
    assert (await client.get(f"/api/v1/signals/configs/{nowhere['id']}/backtest", headers=user_auth)).status_code == 404
    assert (await client.get("/api/v1/signals/configs/nope/backtest", headers=user_auth)).status_code == 404


async def test_the_strategies_config_parameters_are_listed_for_the_admin_form(client: httpx.AsyncClient,
                                                                              runtime: Runtime) -> None:
    _, auth = await user(client, runtime, "ana@example.com")
    assert (await client.get("/api/v1/signals/strategies")).status_code == 401
    answer = (await client.get("/api/v1/signals/strategies", headers=auth)).json()
    assert answer["next"] is None
    specs = {s["name"]: s for s in answer["data"]}
    assert set(specs) == {"ut_bot", "ema_cross", "rsi_reversion", "bollinger_breakout", "supertrend"}
    ut_bot = {p["name"]: p for p in specs["ut_bot"]["params"]}
    assert list(ut_bot)[:4] == ["key_value", "atr_period", "ema_period", "heikin_ashi"]
    assert (ut_bot["ema_period"]["kind"], ut_bot["ema_period"]["default"], ut_bot["heikin_ashi"]["kind"]) == (
        "int", 1, "bool")
    # What the form sends back is what the config endpoint takes: every default makes a valid config.
    admin_auth = await admin(client, runtime)
    for name, spec in specs.items():
        body = {"symbol": "BTCUSDT", "timeframe": "1h", "strategy": name} | {
            p["name"]: p["default"] for p in spec["params"]}
        made = await client.post(CONFIGS, json=body, headers=admin_auth)
        assert made.status_code == 201, (name, made.text)


async def test_the_signals_page_is_served_with_its_script(client: httpx.AsyncClient) -> None:
    page = await client.get("/signals")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/signals.js"></script>' in page.text and 'id="signal-cards"' in page.text
