"""The grace period after a failed renewal (time injected): the plan is kept and the user told, then it drops to
free on the holder of the `payments-grace` lease; a payment in time ends the grace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from accounts.conftest import signed_in_admin  # noqa: I001 (tests/accounts)
from fakes.stripe_server import FakeStripe
from marketpulse.clock import FakeClock
from marketpulse.coordination.lease import InProcessLeaseStore, PeriodicDuty
from marketpulse.payments.service import GRACE_CHECK_EVERY_MS, GRACE_LEASE
from marketpulse.runtime import Runtime
from support.waiting import eventually  # noqa: I001

from .conftest import GRACE_S, Sink, pay, user_headers


# Days pass here: access tokens expire, so the state is read through the services.
async def plan_of(runtime: Runtime, user_id: str) -> str:
    user = await runtime.services.accounts.get_user(user_id)
    assert user is not None
    return user.plan


async def view_of(runtime: Runtime, user_id: str) -> dict[str, Any]:
    user = await runtime.services.accounts.get_user(user_id)
    assert user is not None
    return await runtime.services.payments.billing(user)


async def test_a_failed_renewal_keeps_the_plan_through_the_grace_period_then_drops_to_free(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe, clock: FakeClock) -> None:
    user_id, headers = await user_headers(client, sink, "late@example.com")
    await pay(client, headers, {"plan": "elite"})
    [sub] = stripe_fake.subscriptions
    failed_at = clock.now_ms()
    await stripe_fake.fail_renewal(sub)

    view = (await client.get("/api/v1/payments/subscription", headers=headers)).json()  # the API, still in time
    assert (view["plan"], view["status"]) == ("elite", "past_due")
    assert view["grace_ends_at_ms"] == failed_at + GRACE_S * 1000
    told = [m for m in sink.to("late@example.com") if m["Subject"] == "Your marketpulse payment failed"]
    assert len(told) == 1  # invoice.payment_failed and subscription.updated(past_due): told once

    payments = runtime.services.payments
    clock.set(failed_at + GRACE_S * 1000 - 1)
    assert await payments.expire_grace() == 0 and await plan_of(runtime, user_id) == "elite"
    clock.set(failed_at + GRACE_S * 1000)
    assert await payments.expire_grace() == 1
    assert await plan_of(runtime, user_id) == "free"
    assert await payments.expire_grace() == 0  # done once
    assert [m["Subject"] for m in sink.to("late@example.com")][-1] == "Your marketpulse plan is now free"

    # Stripe's later retries still failing (past_due again) don't bring the plan back nor start a new grace.
    await stripe_fake.fail_renewal(sub)
    assert await plan_of(runtime, user_id) == "free"
    assert (await view_of(runtime, user_id))["grace_ends_at_ms"] is None
    # Paying at last does.
    await stripe_fake.renew(sub, paid=True)
    assert await plan_of(runtime, user_id) == "elite"

    admin = await signed_in_admin(client, runtime)
    log = (await client.get("/api/v1/admin/audit-log", params={"target_id": user_id, "action": "payments."},
                            headers={"Authorization": admin})).json()["data"]
    assert [(e["action"], e["new_values"]["plan"]) for e in reversed(log)] == [
        ("payments.plan_changed", "elite"), ("payments.grace_expired", "free"), ("payments.plan_changed", "elite")]


async def test_paying_within_the_grace_period_ends_it(client: httpx.AsyncClient, sink: Sink, runtime: Runtime,
                                                     stripe_fake: FakeStripe, clock: FakeClock) -> None:
    user_id, headers = await user_headers(client, sink, "saved@example.com")
    await pay(client, headers, {"plan": "pro"})
    [sub] = stripe_fake.subscriptions
    await stripe_fake.fail_renewal(sub)
    clock.advance(GRACE_S * 1000 // 2)
    await stripe_fake.renew(sub, paid=True)
    view = await view_of(runtime, user_id)
    assert (view["status"], view["grace_ends_at_ms"]) == ("active", None)
    assert view["invoices"][0]["status"] == "paid"  # the newest
    assert sorted(i["status"] for i in view["invoices"]) == ["open", "paid", "paid"]
    clock.advance(GRACE_S * 1000)
    assert await runtime.services.payments.expire_grace() == 0
    assert await plan_of(runtime, user_id) == "pro"


async def test_the_grace_check_runs_on_the_lease_holder_by_the_injected_clock(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe, clock: FakeClock) -> None:
    user_id, headers = await user_headers(client, sink, "duty@example.com")
    await pay(client, headers, {"plan": "pro"})
    [sub] = stripe_fake.subscriptions
    await stripe_fake.fail_renewal(sub)
    leases = InProcessLeaseStore(clock)
    duty = PeriodicDuty(leases, GRACE_LEASE, runtime.services.payments.expire_grace, every_ms=GRACE_CHECK_EVERY_MS,
                        ttl_ms=15_000, clock=clock)
    await duty.start()
    try:
        assert duty.lease.held
        clock.advance(GRACE_S * 1000 + GRACE_CHECK_EVERY_MS)
        await eventually(_is_free(runtime, user_id), what="the duty to drop the plan to free")
    finally:
        await duty.stop()


def _is_free(runtime: Runtime, user_id: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return await plan_of(runtime, user_id) == "free"
    return probe
