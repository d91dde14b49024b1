"""The alert-rules API: the wire shape round-trips, bad rules are 422s naming the field, rules are the owner's
alone, plan limits hold, pause/resume/delete follow, and every change is announced on `rules.changed`."""

from __future__ import annotations

import httpx
import pytest

from marketpulse.bus import topics
from marketpulse.runtime import Runtime

from .conftest import destination, rule, user

pytestmark = pytest.mark.asyncio

RULES = "/api/v1/alerts/rules"


async def test_create_read_list_replace_delete(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner, auth = await user(client, runtime, "ana@example.com")
    email = await destination(runtime, owner)
    created = await client.post(RULES, json=rule(channels=[email], symbols=["btc-usdt", "ETHUSDT"]), headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["symbols"] == ["BTCUSDT", "ETHUSDT"]  # normalized, sorted
    assert body["conditions"] == {"all": [{"field": "price", "op": "crosses_above", "value": 100000.0}]}
    assert (body["channels"], body["frequency"], body["cooldown_s"], body["enabled"]) == ([email], "once_per_bar",
                                                                                           300, True)
    rid = body["id"]
    assert (await client.get(f"{RULES}/{rid}", headers=auth)).json()["name"] == "BTC above 100k"
    assert [r["id"] for r in (await client.get(RULES, headers=auth)).json()["data"]] == [rid]
    replaced = await client.put(f"{RULES}/{rid}", json=rule(name="renamed", symbol="SOLUSDT"), headers=auth)
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["name"], replaced.json()["symbol"], replaced.json()["version"]) == ("renamed",
                                                                                              "SOLUSDT", 2)
    assert (await client.delete(f"{RULES}/{rid}", headers=auth)).status_code == 204
    assert (await client.get(f"{RULES}/{rid}", headers=auth)).status_code == 404


async def test_another_users_rule_is_not_found(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, ana = await user(client, runtime, "ana@example.com")
    _, bob = await user(client, runtime, "bob@example.com")
    rid = (await client.post(RULES, json=rule(), headers=ana)).json()["id"]
    for method, path in (("GET", f"{RULES}/{rid}"), ("DELETE", f"{RULES}/{rid}"), ("POST", f"{RULES}/{rid}/pause"),
                         ("POST", f"{RULES}/{rid}/resume")):
        assert (await client.request(method, path, headers=bob)).status_code == 404, (method, path)
    assert (await client.put(f"{RULES}/{rid}", json=rule(), headers=bob)).status_code == 404
    assert (await client.get(RULES, headers=bob)).json()["data"] == []
    assert (await client.get(f"{RULES}/{rid}", headers=ana)).status_code == 200


async def test_sign_in_or_an_alerts_key_is_required(client: httpx.AsyncClient, runtime: Runtime) -> None:
    assert (await client.get(RULES)).status_code == 401
    assert (await client.post(RULES, json=rule())).status_code == 401
    _, auth = await user(client, runtime, "ana@example.com")
    keys = {}
    for scopes in (["read"], ["alerts"]):
        made = await client.post("/api/v1/account/api-keys", json={"name": "k", "scopes": scopes}, headers=auth)
        assert made.status_code == 201, made.text
        keys[scopes[0]] = {"Authorization": f"Bearer {made.json()['key']}"}
    refused = await client.post(RULES, json=rule(), headers=keys["read"])
    assert refused.status_code == 403 and refused.json()["detail"]["scope"] == "alerts"
    assert (await client.post(RULES, json=rule(), headers=keys["alerts"])).status_code == 201


@pytest.mark.parametrize(("change", "loc_tail", "words"), [
    ({"conditions": {"all": [{"field": "prize", "op": "gt", "value": 1}]}}, "field", "unknown field"),
    ({"conditions": {"all": [{"field": "price", "op": "above", "value": 1}]}}, "op", "gt"),
    ({"conditions": {"all": [{"field": "price", "op": "gt"}]}}, "field", "needs 'value'"),
    ({"conditions": {"all": [{"field": "price", "op": "enters_channel", "lower": 5, "upper": 1}]}}, "field",
     "lower must be below upper"),
    ({"conditions": {"all": [{"field": "price", "op": "moves_up_pct", "value": 5}]}}, "field", "needs 'window'"),
    ({"conditions": {"all": [{"field": "price", "op": "moves_up_pct", "value": 5, "window": "7m"}]}}, "window",
     "interval"),
    ({"conditions": {"all": [{"field": "price", "op": "gt", "value": "NaN"}]}}, "value", "finite"),
    ({"conditions": {"all": [{"event": "paper_fill"}], "any": [{"event": "paper_fill"}]}}, "conditions",
     "exactly one"),
    ({"conditions": {"every": []}}, "every", "extra inputs"),
    ({"conditions": {"all": [{"foo": 1}]}}, "0", "a condition has"),
    ({"frequency": "hourly"}, "frequency", "once"),
    ({"interval": "7m"}, "interval", "interval"),
    ({"cooldown_s": -1}, "cooldown_s", "greater than or equal"),
    ({"symbols": ["BTC/USDT", "🚀"]}, "symbols", "not a market symbol"),
    ({"symbol": "BTCUSDT", "symbols": "*"}, "body", "exactly one of"),
    ({"hysteresis_pct": 80}, "hysteresis_pct", "less than or equal"),
])
async def test_bad_rules_are_422_naming_the_field(client: httpx.AsyncClient, runtime: Runtime, change: dict,
                                                  loc_tail: str, words: str) -> None:
    _, auth = await user(client, runtime, "ana@example.com")
    resp = await client.post(RULES, json=rule(**change), headers=auth)
    assert resp.status_code == 422, resp.text
    errors = resp.json()["detail"]
    assert any(str(e["loc"][-1]) == loc_tail or loc_tail in map(str, e["loc"]) for e in errors), errors
    assert any(words.lower() in e["msg"].lower() for e in errors), errors
    assert (await client.get(RULES, headers=auth)).json()["data"] == []  # nothing stored


async def test_channels_must_be_the_owners_destinations_on_the_plan(client: httpx.AsyncClient,
                                                                    runtime: Runtime) -> None:
    ana, auth = await user(client, runtime, "ana@example.com", plan="free")
    bob, _ = await user(client, runtime, "bob@example.com")
    sms = await destination(runtime, ana, channel="sms")
    bobs = await destination(runtime, bob)
    resp = await client.post(RULES, json=rule(channels=[sms, bobs]), headers=auth)
    assert resp.status_code == 422
    by_loc = {tuple(e["loc"]): e["msg"] for e in resp.json()["detail"]}
    assert "free plan does not deliver by sms" in by_loc[("body", "channels", 0)]
    assert "no such destination" in by_loc[("body", "channels", 1)]
    email = await destination(runtime, ana)
    assert (await client.post(RULES, json=rule(channels=[email]), headers=auth)).status_code == 201


async def test_active_rules_are_limited_by_the_plan(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, auth = await user(client, runtime, "ana@example.com", plan="free")  # 5 active rules
    ids = [(await client.post(RULES, json=rule(name=f"r{i}"), headers=auth)).json()["id"] for i in range(5)]
    over = await client.post(RULES, json=rule(name="sixth"), headers=auth)
    assert over.status_code == 409 and over.json()["detail"]["reason"] == "active_alert_rules"
    assert over.json()["detail"]["limit"] == 5
    paused_one = await client.post(RULES, json=rule(name="paused", enabled=False), headers=auth)
    assert paused_one.status_code == 201  # a paused rule doesn't count
    assert (await client.post(f"{RULES}/{paused_one.json()['id']}/resume", headers=auth)).status_code == 409
    paused = await client.post(f"{RULES}/{ids[0]}/pause", headers=auth)
    assert paused.json()["enabled"] is False
    resumed = await client.post(f"{RULES}/{paused_one.json()['id']}/resume", headers=auth)
    assert resumed.status_code == 200 and resumed.json()["enabled"] is True


async def test_every_change_is_announced_for_the_engines(client: httpx.AsyncClient, runtime: Runtime) -> None:
    seen: list[topics.RulesChanged] = []

    async def collect(msg: object) -> None:
        seen.append(msg.data)  # type: ignore[attr-defined]

    await runtime.bus.subscribe(topics.RULES_CHANGED, "test", collect)
    _, auth = await user(client, runtime, "ana@example.com")
    rid = (await client.post(RULES, json=rule(), headers=auth)).json()["id"]
    await client.post(f"{RULES}/{rid}/pause", headers=auth)
    await client.delete(f"{RULES}/{rid}", headers=auth)
    from support.waiting import eventually

    await eventually(lambda: len(seen) == 3)
    assert [(m.rule_id, m.version, m.deleted) for m in seen] == [(rid, 1, False), (rid, 2, False), (rid, 3, True)]
