"""The payments API with the official `stripe` client against the local fake Stripe (form bodies, Idempotency-Key,
error objects), on SQLite and PostgreSQL: upgrading by card, buying credits, the webhook's signature, repeats and
out-of-order events, rotation secrets, unknown customers, refusals."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from accounts.conftest import signed_in_admin  # noqa: I001 (tests/accounts)
from fakes.stripe_server import FakeStripe, stripe_signature
from marketpulse.bus import topics
from marketpulse.bus.base import Message
from marketpulse.clock import FakeClock
from marketpulse.payments.tables import StripeEventRow
from marketpulse.runtime import Runtime

from .conftest import OLD_SECRET, SECRET, WEBHOOK, Sink, pay, user_headers


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    return dict((await client.get("/api/v1/auth/me", headers=headers)).json())


async def billing(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    resp = await client.get("/api/v1/payments/subscription", headers=headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def stored_events(runtime: Runtime) -> int:
    async with runtime.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(StripeEventRow)) or 0)


async def post_event(client: httpx.AsyncClient, event: dict[str, Any], secret: str, t: int) -> httpx.Response:
    body = json.dumps(event).encode()
    return await client.post(WEBHOOK, content=body, headers={"Stripe-Signature": stripe_signature(body, secret, t)})


async def test_upgrading_to_pro_by_card_changes_the_plan_at_once_and_tells_live_connections(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe, clock: FakeClock) -> None:
    heard: list[topics.AccountChanged] = []

    async def on_change(msg: Message[topics.AccountChanged]) -> None:
        heard.append(msg.data)

    await runtime.bus.subscribe(topics.ACCOUNT_CHANGED, "test", on_change)
    user_id, headers = await user_headers(client, sink, "buyer@example.com")
    assert (await billing(client, headers))["status"] == "none"

    session_id = await pay(client, headers, {"plan": "pro"})

    # What the official client sent: form-encoded, with our user in the session and in the subscription.
    [(method, path, params, key)] = [r for r in stripe_fake.requests if r[1] == "/v1/checkout/sessions"]
    assert (method, params["mode"], params["client_reference_id"]) == ("POST", "subscription", user_id)
    assert params["subscription_data"]["metadata"]["user_id"] == user_id
    assert params["line_items"] == [{"price": "price_pro_m", "quantity": "1"}]
    assert key and key.startswith(f"checkout:{user_id}:pro:")
    [customer_request] = [r for r in stripe_fake.requests if r[1] == "/v1/customers"]
    assert customer_request[3] == f"customer:{user_id}" and customer_request[2]["email"] == "buyer@example.com"
    assert stripe_fake.sessions[session_id]["status"] == "complete"

    assert (await me(client, headers))["plan"] == "pro"
    assert [(h.user_id, h.plan, h.status) for h in heard] == [(user_id, "pro", "active")]
    view = await billing(client, headers)
    [sub] = stripe_fake.subscriptions.values()
    assert (view["plan"], view["status"], view["subscription_plan"]) == ("pro", "active", "pro")
    assert view["renews_at_ms"] == sub["items"]["data"][0]["current_period_end"] * 1000
    assert view["renews_at_ms"] == clock.now_ms() // 1000 * 1000 + 30 * 86_400_000
    assert [(i["status"], i["amount_paid"], i["currency"]) for i in view["invoices"]] == [("paid", 2900, "usd")]

    admin = await signed_in_admin(client, runtime)
    log = (await client.get("/api/v1/admin/audit-log", params={"action": "payments.plan_changed"},
                            headers={"Authorization": admin})).json()["data"]
    assert [(e["target_id"], e["old_values"], e["new_values"]["plan"], e["actor_id"]) for e in log] == [
        (user_id, {"plan": "free"}, "pro", None)]

    # A second plan checkout is refused: changes go through the portal, which opens at the fake.
    again = await client.post("/api/v1/payments/checkout", json={"plan": "elite"}, headers=headers)
    assert again.status_code == 409 and again.json()["detail"]["reason"] == "subscribed"
    portal = await client.post("/api/v1/payments/portal", headers=headers)
    assert portal.status_code == 200 and portal.json()["url"].startswith(f"{stripe_fake.base_url}/portal/")

    # Cancelling in the portal sends customer.subscription.deleted: back to free, told live.
    async with httpx.AsyncClient() as browser:
        cancelled = await browser.post(portal.json()["url"] + "/cancel")
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "http://test/settings#billing"
    assert (await me(client, headers))["plan"] == "free"
    assert heard[-1] == topics.AccountChanged(user_id, "free", "active")
    assert (await billing(client, headers))["status"] == "canceled"


async def test_a_credit_pack_adds_credits_once_and_a_refund_takes_them_back_or_shows_the_debt(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe) -> None:
    user_id, headers = await user_headers(client, sink, "credits@example.com")
    session_id = await pay(client, headers, {"credit_pack": "credits_1000"})
    [(_, _, params, _)] = [r for r in stripe_fake.requests if r[1] == "/v1/checkout/sessions"]
    assert (params["mode"], params["client_reference_id"]) == ("payment", user_id)
    view = await billing(client, headers)
    assert (view["plan"], view["credit_balance"], view["credit_debt"]) == ("free", 1000, 0)

    # Stripe sends the same event again: nothing more.
    completed = next(e for e in stripe_fake.events if e["type"] == "checkout.session.completed")
    again = await stripe_fake.deliver(completed)
    assert again is not None and again.json() == {"received": True, "outcome": "duplicate"}
    assert (await billing(client, headers))["credit_balance"] == 1000

    async with runtime.sessions() as s:  # 300 credits spent
        await runtime.services.credits.charge(s, owner_id=user_id, amount=300, idempotency_key="spent",
                                              reason="sms")
        await s.commit()
    pi = stripe_fake.sessions[session_id]["payment_intent"]
    await stripe_fake.refund(pi, amount=5_000)  # $50 of $100: 500 credits back
    assert (await billing(client, headers))["credit_balance"] == 200
    await stripe_fake.refund(pi)  # the rest: 500 more, but only 200 are left
    view = await billing(client, headers)
    assert (view["credit_balance"], view["credit_debt"]) == (0, 300)
    assert view["purchases"] == [{"pack": "credits_1000", "credits": 1000, "taken_back": 1000,
                                  "created_at_ms": view["purchases"][0]["created_at_ms"]}]
    ledger = (await client.get("/api/v1/account/credits", headers=headers)).json()["data"]
    assert [(e["kind"], e["amount"]) for e in ledger] == [
        ("adjustment", -200), ("adjustment", -500), ("usage", -300), ("purchase", 1000)]


async def test_later_purchases_pay_the_credit_debt_down_first(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe) -> None:
    user_id, headers = await user_headers(client, sink, "debtor@example.com")
    session_id = await pay(client, headers, {"credit_pack": "credits_1000"})
    async with runtime.sessions() as s:  # 300 spent, then the whole pack refunded: 300 owed
        await runtime.services.credits.charge(s, owner_id=user_id, amount=300, idempotency_key="spent",
                                              reason="sms")
        await s.commit()
    await stripe_fake.refund(stripe_fake.sessions[session_id]["payment_intent"])
    assert ((view := await billing(client, headers))["credit_balance"], view["credit_debt"]) == (0, 300)

    await pay(client, headers, {"credit_pack": "credits_100"})  # all of it goes to the debt
    assert ((view := await billing(client, headers))["credit_balance"], view["credit_debt"]) == (0, 200)
    second = await pay(client, headers, {"credit_pack": "credits_1000"})  # the rest of the debt, then the balance
    assert ((view := await billing(client, headers))["credit_balance"], view["credit_debt"]) == (800, 0)
    ledger = (await client.get("/api/v1/account/credits", headers=headers)).json()["data"]
    assert [(e["kind"], e["amount"]) for e in ledger][:4] == [
        ("adjustment", -200), ("purchase", 1000), ("adjustment", -100), ("purchase", 100)]
    completed = [e for e in stripe_fake.events if e["type"] == "checkout.session.completed"
                 and e["data"]["object"]["id"] == second]
    await stripe_fake.deliver(completed[0])  # Stripe sends it again: nothing paid twice
    assert ((view := await billing(client, headers))["credit_balance"], view["credit_debt"]) == (800, 0)


async def test_a_bad_signature_is_a_400_and_changes_nothing(client: httpx.AsyncClient, sink: Sink,
                                                           runtime: Runtime, stripe_fake: FakeStripe,
                                                           clock: FakeClock) -> None:
    user_id, headers = await user_headers(client, sink, "target@example.com")
    customer = await runtime.services.payments.gateway.create_customer(email="t@example.com", user_id=user_id,
                                                                       idempotency_key="c1")
    sub = {"id": "sub_forged", "object": "subscription", "customer": customer, "status": "active",
           "metadata": {"user_id": user_id}, "items": {"data": [{"price": {"id": "price_elite_m"}}]}}
    event = stripe_fake.event("customer.subscription.created", sub)
    now = clock.now_ms() // 1000
    body = json.dumps(event).encode()
    for headers_sent in ({"Stripe-Signature": stripe_signature(body, "whsec_attacker", now)},
                         {"Stripe-Signature": stripe_signature(body, SECRET, now - 301)},
                         {"Stripe-Signature": stripe_signature(body + b" ", SECRET, now)},
                         {"Stripe-Signature": "garbage"}, {}):
        resp = await client.post(WEBHOOK, content=body, headers=headers_sent)
        assert resp.status_code == 400, resp.text
        assert resp.json()["detail"]["reason"] == "signature"
    assert (await me(client, headers))["plan"] == "free" and await stored_events(runtime) == 0
    bad_body = await client.post(WEBHOOK, content=b"[1]", headers={
        "Stripe-Signature": stripe_signature(b"[1]", SECRET, now)})
    assert bad_body.status_code == 400 and bad_body.json()["detail"]["reason"] == "event"

    # Signed by the secret being rotated out: accepted, and applied once.
    assert (await post_event(client, event, OLD_SECRET, now)).json()["outcome"] == "applied"
    assert (await me(client, headers))["plan"] == "elite"
    assert (await post_event(client, event, SECRET, now)).json()["outcome"] == "duplicate"
    assert await stored_events(runtime) == 1


async def test_events_out_of_order_end_where_stripe_ended(client: httpx.AsyncClient, sink: Sink,
                                                          runtime: Runtime, stripe_fake: FakeStripe,
                                                          clock: FakeClock) -> None:
    user_id, headers = await user_headers(client, sink, "order@example.com")
    base = {"id": "sub_ooo", "object": "subscription", "customer": "cus_unlinked", "metadata": {"user_id": user_id},
            "items": {"data": [{"price": {"id": "price_pro_m"}, "current_period_end": 1_770_000_000}]}}
    created = stripe_fake.event("customer.subscription.created", {**base, "status": "active"})
    clock.advance(5_000)
    deleted = stripe_fake.event("customer.subscription.deleted", {**base, "status": "canceled"})
    now = clock.now_ms() // 1000
    # Stripe delivers the deletion first, then the older creation, then the deletion again.
    assert (await post_event(client, deleted, SECRET, now)).json()["outcome"] == "applied"
    assert (await post_event(client, created, SECRET, now)).json()["outcome"] == "stale"
    assert (await post_event(client, deleted, SECRET, now)).json()["outcome"] == "duplicate"
    assert (await me(client, headers))["plan"] == "free"
    assert (await billing(client, headers))["status"] == "canceled"

    # An invoice paid before its subscription's events arrive is still the user's (named in its metadata).
    invoice = {"id": "in_early", "object": "invoice", "customer": "cus_unlinked", "status": "paid",
               "amount_due": 2900, "amount_paid": 2900, "currency": "usd", "created": now,
               "parent": {"subscription_details": {"subscription": "sub_new", "metadata": {"user_id": user_id}}}}
    assert (await post_event(client, stripe_fake.event("invoice.paid", invoice), SECRET, now)).json()[
        "outcome"] == "applied"
    assert [i["id"] for i in (await billing(client, headers))["invoices"]] == ["in_early"]


async def test_events_for_unknown_customers_are_kept_for_admins(client: httpx.AsyncClient, sink: Sink,
                                                                runtime: Runtime, stripe_fake: FakeStripe,
                                                                clock: FakeClock) -> None:
    sub = {"id": "sub_stranger", "object": "subscription", "customer": "cus_stranger", "status": "active",
           "metadata": {}, "items": {"data": [{"price": {"id": "price_pro_m"}}]}}
    event = stripe_fake.event("customer.subscription.updated", sub)
    resp = await post_event(client, event, SECRET, clock.now_ms() // 1000)
    assert resp.status_code == 200 and resp.json()["outcome"] == "unknown_customer"
    ignored = stripe_fake.event("payment_intent.created", {"id": "pi_1", "object": "payment_intent"})
    assert (await post_event(client, ignored, SECRET, clock.now_ms() // 1000)).json()["outcome"] == "ignored"

    admin = await signed_in_admin(client, runtime)
    found = (await client.get("/api/v1/admin/payments/events", params={"outcome": "unknown_customer"},
                              headers={"Authorization": admin})).json()
    assert found["total"] == 1
    [kept] = found["data"]
    assert (kept["event_id"], kept["customer_id"], kept["owner_id"]) == (event["id"], "cus_stranger", None)
    assert kept["payload"] == event
    _, user = await user_headers(client, sink, "nosy@example.com")
    assert (await client.get("/api/v1/admin/payments/events", headers=user)).status_code == 403


async def test_checkout_refusals_name_the_field(client: httpx.AsyncClient, sink: Sink, runtime: Runtime,
                                                stripe_fake: FakeStripe) -> None:
    _, headers = await user_headers(client, sink, "picky@example.com")
    assert (await client.post("/api/v1/payments/checkout", json={"plan": "pro"})).status_code == 401
    for body, field in (({"plan": "gold"}, "plan"), ({"plan": "free"}, "plan"), ({"plan": "credits_100"}, "plan"),
                        ({"credit_pack": "pro"}, "credit_pack")):
        resp = await client.post("/api/v1/payments/checkout", json=body, headers=headers)
        assert resp.status_code == 422 and resp.json()["detail"][0]["loc"][-1] == field, resp.text
    both = await client.post("/api/v1/payments/checkout", json={"plan": "pro", "credit_pack": "credits_100"},
                             headers=headers)
    assert both.status_code == 422 and "either plan or credit_pack" in both.text
    assert (await client.post("/api/v1/payments/portal", headers=headers)).status_code == 404

    # Stripe refusing (a Price it doesn't have) is a 503 naming Stripe, not a 500.
    del stripe_fake.prices["price_elite_m"]
    refused = await client.post("/api/v1/payments/checkout", json={"plan": "elite"}, headers=headers)
    assert refused.status_code == 503 and "InvalidRequestError" in refused.text

    products = (await client.get("/api/v1/payments/products")).json()
    assert products["card_payments"] is True
    assert [(p["name"], p["price_usd"], p["available"]) for p in products["data"]] == [
        ("pro", 29.0, True), ("elite", 99.0, True), ("credits_100", 10.0, True), ("credits_1000", 100.0, True)]


async def test_without_a_secret_key_card_payments_answer_503(client: httpx.AsyncClient, sink: Sink,
                                                             runtime: Runtime) -> None:
    runtime.settings.stripe_secret_key = None
    _, headers = await user_headers(client, sink, "early@example.com")
    resp = await client.post("/api/v1/payments/checkout", json={"plan": "pro"}, headers=headers)
    assert resp.status_code == 503 and "PULSE_STRIPE_SECRET_KEY" in resp.text
    assert (await client.get("/api/v1/payments/products")).json()["card_payments"] is False


@pytest.mark.parametrize("price", ["pro", "elite"])
async def test_each_plans_price_setting_sells_that_plan(client: httpx.AsyncClient, sink: Sink, runtime: Runtime,
                                                        stripe_fake: FakeStripe, price: str) -> None:
    _, headers = await user_headers(client, sink, f"{price}@example.com")
    await pay(client, headers, {"plan": price})
    assert (await me(client, headers))["plan"] == price
    setattr(runtime.settings, f"stripe_price_{price}", None)  # unset: no longer sold
    resp = await client.post("/api/v1/payments/checkout", json={"plan": price}, headers=headers)
    assert resp.status_code == 422


async def test_an_admin_refunds_a_credit_pack_at_stripe_and_the_credits_leave(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe) -> None:
    user_id, headers = await user_headers(client, sink, "refunded@example.com")
    session_id = await pay(client, headers, {"credit_pack": "credits_100"})
    admin = {"Authorization": await signed_in_admin(client, runtime)}
    seen = (await client.get(f"/api/v1/admin/users/{user_id}/payments", headers=admin)).json()
    assert [(p["session_id"], p["credits"]) for p in seen["purchases"]] == [(session_id, 100)]
    assert seen["billing"]["credit_balance"] == 100

    resp = await client.post(f"/api/v1/admin/users/{user_id}/payments/{session_id}/refund", headers=admin)
    assert resp.status_code == 200, resp.text
    assert [r for r in stripe_fake.requests if r[1] == "/v1/refunds"][0][2] == {
        "payment_intent": stripe_fake.sessions[session_id]["payment_intent"]}
    assert (await billing(client, headers))["credit_balance"] == 0
    log = (await client.get("/api/v1/admin/audit-log", params={"action": "admin.payment_refunded"},
                            headers=admin)).json()["data"]
    assert [(e["target_id"], e["new_values"]["refund"]) for e in log] == [(user_id, resp.json()["refund_id"])]
    again = await client.post(f"/api/v1/admin/users/{user_id}/payments/{session_id}/refund", headers=admin)
    assert again.status_code == 200 and again.json() == resp.json()  # the same refund (its idempotency key)
    other, _ = await user_headers(client, sink, "other@example.com")
    assert (await client.post(f"/api/v1/admin/users/{other}/payments/{session_id}/refund",
                              headers=admin)).status_code == 404
    assert (await client.post(f"/api/v1/admin/users/{user_id}/payments/{session_id}/refund",
                              headers=headers)).status_code == 403


async def test_administrators_list_every_payment_newest_first_and_refund_from_the_list(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe, clock: FakeClock) -> None:
    user_id, headers = await user_headers(client, sink, "payer@example.com")
    await pay(client, headers, {"plan": "pro"})
    clock.advance(1_000)
    session_id = await pay(client, headers, {"credit_pack": "credits_100"})
    admin = {"Authorization": await signed_in_admin(client, runtime)}
    assert (await client.get("/api/v1/admin/payments", headers=headers)).status_code == 403
    listed = (await client.get("/api/v1/admin/payments", headers=admin)).json()
    assert [(p["kind"], p["product"], p["status"], p["email"]) for p in listed["data"]] == [
        ("card_purchase", "credits_100", "paid", "payer@example.com"),
        ("card_invoice", "subscription", "paid", "payer@example.com")]
    assert listed["next"] is None and listed["data"][0]["refundable"] is True
    assert listed["data"][1]["amount"] == "29.00" and listed["data"][0]["amount"] == "10.00"
    first = (await client.get("/api/v1/admin/payments?limit=1", headers=admin)).json()
    assert len(first["data"]) == 1 and first["next"] == "1"
    rest = (await client.get(f"/api/v1/admin/payments?limit=1&cursor={first['next']}", headers=admin)).json()
    assert [p["kind"] for p in rest["data"]] == ["card_invoice"] and rest["next"] is None
    only = (await client.get("/api/v1/admin/payments?kind=card_invoice", headers=admin)).json()["data"]
    assert [p["kind"] for p in only] == ["card_invoice"]
    r = await client.get("/api/v1/admin/payments?kind=cash", headers=admin)
    assert r.status_code == 422 and "kind" in r.text

    purchase = listed["data"][0]
    r = await client.post(f"/api/v1/admin/users/{purchase['owner_id']}/payments/{purchase['id']}/refund",
                          headers=admin)
    assert r.status_code == 200, r.text
    again = (await client.get("/api/v1/admin/payments?kind=card_purchase", headers=admin)).json()["data"]
    assert (again[0]["id"], again[0]["status"], again[0]["refundable"]) == (session_id, "refunded", False)
    assert purchase["owner_id"] == user_id
