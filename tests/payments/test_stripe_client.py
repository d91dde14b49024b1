"""The official client against the fake, at the wire: a retried create with the same Idempotency-Key gets the first
answer back (one customer at Stripe), usage reports are form-encoded meter events counted once per identifier, and
Stripe's error objects become the library's errors."""

from __future__ import annotations

import pytest
import stripe

from fakes.stripe_server import FakeStripe, parse_form
from marketpulse.runtime import Runtime


async def test_the_same_idempotency_key_makes_one_customer(runtime: Runtime, stripe_fake: FakeStripe) -> None:
    gateway = runtime.services.payments.gateway
    first = await gateway.create_customer(email="a@example.com", user_id="u1", idempotency_key="customer:u1")
    again = await gateway.create_customer(email="a@example.com", user_id="u1", idempotency_key="customer:u1")
    assert first == again and list(stripe_fake.customers) == [first]
    assert [r[3] for r in stripe_fake.requests if r[1] == "/v1/customers"] == ["customer:u1", "customer:u1"]
    assert stripe_fake.customers[first]["metadata"] == {"user_id": "u1"}
    with pytest.raises(stripe.IdempotencyError):  # the same key for another request is refused, as Stripe does
        await gateway.create_customer(email="b@example.com", user_id="u2", idempotency_key="customer:u1")


async def test_meter_events_are_counted_once_per_identifier(runtime: Runtime, stripe_fake: FakeStripe) -> None:
    gateway = runtime.services.payments.gateway
    for _ in range(2):
        await gateway.meter_event(event_name="api_requests", customer_id="cus_1", value=250,
                                  identifier="cus_1:2025-10-10", timestamp_s=1_760_126_400)
    [event] = stripe_fake.meter_events
    assert event["payload"] == {"stripe_customer_id": "cus_1", "value": "250"}
    assert (event["event_name"], event["identifier"], event["timestamp"]) == (
        "api_requests", "cus_1:2025-10-10", 1_760_126_400)


async def test_stripe_errors_arrive_as_the_librarys_errors(runtime: Runtime, stripe_fake: FakeStripe) -> None:
    gateway = runtime.services.payments.gateway
    with pytest.raises(stripe.InvalidRequestError) as err:
        await gateway.portal(customer_id="cus_nobody", return_url="http://test/settings")
    assert (err.value.code, err.value.param) == ("resource_missing", "customer")
    stripe_fake.api_key = "sk_test_rotated"
    with pytest.raises(stripe.AuthenticationError):
        await gateway.invoices("cus_nobody")


def test_the_fake_reads_stripes_bracket_notation() -> None:
    assert parse_form("line_items[0][price]=p&line_items[0][quantity]=1&metadata[user_id]=u&mode=payment") == {
        "line_items": [{"price": "p", "quantity": "1"}], "metadata": {"user_id": "u"}, "mode": "payment"}
