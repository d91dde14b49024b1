"""The pure rules: Stripe's signature scheme (tolerance, rotation, tampering), what a subscription state means for
the plan, and how many credits a refund takes back."""

from __future__ import annotations

import pytest

from fakes.stripe_server import stripe_signature
from marketpulse.payments import core

NOW = 1_760_126_400
BODY = b'{"id":"evt_1","type":"invoice.paid"}'


def test_a_signature_by_either_rotation_secret_passes_within_300_seconds() -> None:
    for secret in ("whsec_new", "whsec_old"):
        core.verify_signature(BODY, stripe_signature(BODY, secret, NOW - 300), ["whsec_new", "whsec_old"], NOW)
        core.verify_signature(BODY, stripe_signature(BODY, secret, NOW + 300), ["whsec_new", "whsec_old"], NOW)
    # Stripe sends one v1 per live secret of the endpoint: any matching one is enough.
    header = stripe_signature(BODY, "whsec_other", NOW) + "," + stripe_signature(BODY, "whsec_new", NOW).split(",")[1]
    core.verify_signature(BODY, header, ["whsec_new"], NOW)


@pytest.mark.parametrize(("header", "why"), [
    (None, "no Stripe-Signature"),
    ("", "no Stripe-Signature"),
    ("v1=abc", "no timestamp"),
    (f"t={NOW}", "no timestamp or no v1"),
    (stripe_signature(BODY, "whsec_new", NOW - 301), "outside the tolerance"),
    (stripe_signature(BODY, "whsec_new", NOW + 301), "outside the tolerance"),
    (stripe_signature(BODY, "whsec_unknown", NOW), "no signature matches"),
    (stripe_signature(BODY + b" ", "whsec_new", NOW), "no signature matches"),
    (stripe_signature(BODY, "whsec_new", NOW).replace("v1=", "v0="), "no v1"),
])
def test_bad_signatures_are_refused(header: str | None, why: str) -> None:
    with pytest.raises(core.SignatureError, match=why):
        core.verify_signature(BODY, header, ["whsec_new", "whsec_old"], NOW)


def test_no_configured_secret_refuses_everything() -> None:
    with pytest.raises(core.SignatureError, match="no webhook secret"):
        core.verify_signature(BODY, stripe_signature(BODY, "", NOW), core.split_secrets(" , "), NOW)
    assert core.split_secrets("whsec_a, whsec_b,") == ["whsec_a", "whsec_b"]


def _state(status: str, price: str | None = "price_pro") -> core.SubscriptionState:
    return core.SubscriptionState("sub_1", "cus_1", "u1", status, price, None, False)


def test_a_subscription_state_gives_its_prices_plan_only_while_active() -> None:
    catalog = core.Catalog({"pro": "price_pro", "elite": "price_elite", "credits_100": "price_c", "free": None})
    assert catalog.for_price("price_c") == core.Product("credits_100", "credits", "price_c")
    assert [core.plan_for(_state(s), catalog) for s in ("active", "trialing", "past_due", "incomplete")] == [
        "pro", "pro", None, None]
    assert [core.plan_for(_state(s), catalog) for s in ("canceled", "unpaid", "incomplete_expired")] == [
        "free", "free", "free"]
    assert core.plan_for(_state("active", "price_unknown"), catalog) is None
    assert core.plan_for(_state("active", "price_c"), catalog) is None  # a credit pack is no plan


def test_an_older_event_never_overrides_a_newer_state() -> None:
    assert core.newer_than(100, None) and core.newer_than(100, 100) and core.newer_than(101, 100)
    assert not core.newer_than(99, 100)


def test_a_refund_takes_back_the_refunded_share_of_the_pack() -> None:
    assert core.credits_to_take_back(1000, 10_000, 5_000, 0) == 500  # half of $100 back: 500 of 1,000 credits
    assert core.credits_to_take_back(1000, 10_000, 10_000, 500) == 500  # the rest, later
    assert core.credits_to_take_back(1000, 10_000, 10_000, 1000) == 0  # the same refund reported again
    assert core.credits_to_take_back(1000, 10_000, 20_000, 0) == 1000  # never more than the pack


def test_subscription_and_invoice_objects_are_read_in_both_api_shapes() -> None:
    new = {"id": "sub_1", "customer": "cus_1", "status": "active", "metadata": {"user_id": "u1"},
           "items": {"data": [{"price": {"id": "price_pro"}, "current_period_end": NOW + 30 * 86_400}]}}
    old = {"id": "sub_1", "customer": {"id": "cus_1"}, "status": "active", "current_period_end": NOW,
           "items": {"data": [{"price": {"id": "price_pro"}}]}}
    assert core.subscription_state(new) == core.SubscriptionState(
        "sub_1", "cus_1", "u1", "active", "price_pro", NOW + 30 * 86_400, False)
    assert core.subscription_state(old).current_period_end_s == NOW and core.subscription_state(old).user_id is None
    invoice = {"id": "in_1", "customer": "cus_1", "status": "paid", "amount_due": 2900, "amount_paid": 2900,
               "parent": {"subscription_details": {"subscription": "sub_1", "metadata": {"user_id": "u1"}}}}
    state = core.invoice_state(invoice, paid=True)
    assert (state.subscription_id, state.user_id) == ("sub_1", "u1")
    assert core.invoice_state({"id": "in_2", "subscription": "sub_9"}, paid=False).subscription_id == "sub_9"
