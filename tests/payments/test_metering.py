"""Metered API billing: calls counted per user and month through the rate-limit middleware, the excess over a
metered plan's included quota reported to the fake Stripe as Billing Meter Events (batched, each identifier once),
a crashed batch sent again by the next holder with the same identifiers, and the report running on the holder of
the `api-metering` lease. The free plan keeps its daily window as a hard limit; a metered subscriber's calls go
on past it."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from fakes.stripe_server import FakeStripe, Price  # noqa: I001
from marketpulse.accounts.plans import plan_named
from marketpulse.clock import FakeClock
from marketpulse.coordination.lease import InProcessLeaseStore, PeriodicDuty
from marketpulse.payments.core import meter_identifier, previous_period, usage_period
from marketpulse.payments.metering import METER_LEASE, ApiMetering
from marketpulse.payments.stripe_client import StripeGateway
from marketpulse.ratelimit.core import Window
from marketpulse.ratelimit.middleware import RateLimitMiddleware
from marketpulse.runtime import Runtime
from support.waiting import eventually  # noqa: I001

from .conftest import Sink, pay, user_headers

PRO_QUOTA = plan_named("pro").api_calls_included_per_month or 0
ME = "/api/v1/auth/me"


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    app.add_middleware(RateLimitMiddleware)  # counting happens where the rate limit is
    return app


def small_windows(runtime: Runtime, per_day: int) -> None:
    runtime.services.rate_limits.windows_of = lambda plan: (Window(1_000, 60), Window(per_day, 86_400))


async def subscriber(client: httpx.AsyncClient, sink: Sink, email: str,
                     plan: str = "pro") -> tuple[str, dict[str, str]]:
    user_id, headers = await user_headers(client, sink, email)
    await pay(client, headers, {"plan": plan})
    return user_id, headers


async def bring_to(metering: ApiMetering, user_id: str, calls: int) -> None:
    """Make the user's stored count of this month `calls` (their requests so far counted too)."""
    await metering.flush()
    metering.count(user_id, calls - await metering.calls(user_id))
    await metering.flush()


def test_months_and_identifiers() -> None:
    assert usage_period(1_760_126_400_000) == "2025-10"
    assert previous_period(1_760_126_400_000) == "2025-09"
    assert previous_period(1_736_000_000_000) == "2024-12"  # 2025-01-04
    assert meter_identifier("u1", "2025-10", 0, 12) == "api:u1:2025-10:0-12"


async def test_api_calls_are_counted_per_user_and_month_and_the_free_daily_limit_stays_hard(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, clock: FakeClock) -> None:
    free_id, free = await user_headers(client, sink, "free@example.com")
    pro_id, pro = await subscriber(client, sink, "pro@example.com")
    small_windows(runtime, per_day=5)  # (new windows: the counts so far stay in the old ones)
    metering = runtime.services.metering
    await metering.flush()
    free_before, pro_before = await metering.calls(free_id), await metering.calls(pro_id)
    answers = [(await client.get(ME, headers=free)).status_code for _ in range(7)]
    assert answers.count(429) >= 2  # the free plan's daily window refuses: a hard limit
    assert [(await client.get(ME, headers=pro)).status_code for _ in range(8)] == [200] * 8  # metered: goes on
    await metering.flush()
    assert await metering.calls(pro_id) == pro_before + 8
    assert await metering.calls(free_id) == free_before + answers.count(200)  # refused calls aren't counted
    clock.advance(40 * 86_400_000)  # next month: a new count
    assert await metering.calls(pro_id) == 0
    assert await metering.calls(pro_id, usage_period(clock.now_ms() - 40 * 86_400_000)) == pro_before + 8


async def test_counts_flush_on_their_own_after_the_interval(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, clock: FakeClock) -> None:
    user_id, headers = await user_headers(client, sink, "flush@example.com")
    metering = runtime.services.metering
    await metering.flush()
    before = await metering.calls(user_id)
    await client.get(ME, headers=headers)
    assert await metering.calls(user_id) == before  # held in memory
    clock.advance(int(runtime.settings.api_usage_flush_s * 1000))
    await client.get(ME, headers=headers)  # this request's check starts a flush of both, in the background

    async def flushed() -> bool:
        return await metering.calls(user_id) == before + 2

    await eventually(flushed, what="the background flush")


async def test_the_excess_is_reported_in_batches_each_call_once(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe, clock: FakeClock) -> None:
    a_id, _ = await subscriber(client, sink, "a@example.com")
    b_id, _ = await subscriber(client, sink, "b@example.com", plan="elite")
    c_id, _ = await user_headers(client, sink, "c@example.com")  # free: never metered
    metering = runtime.services.metering
    elite_quota = plan_named("elite").api_calls_included_per_month or 0
    await bring_to(metering, a_id, PRO_QUOTA)  # exactly the quota: nothing to bill yet
    await bring_to(metering, b_id, elite_quota + 7)
    await bring_to(metering, c_id, 10_000_000)
    assert await metering.report() == 1  # b only
    customers = {e["payload"]["stripe_customer_id"] for e in stripe_fake.meter_events}
    assert len(customers) == 1 and stripe_fake.usage(customers.pop(), "api_calls") == 7

    metering.count(a_id, 1_500)
    metering.count(b_id, 3)
    await metering.flush()
    assert await metering.report() == 2  # one step, one event per user
    assert await metering.report() == 0  # nothing new: nothing sent
    by_user = {}
    for e in stripe_fake.meter_events:
        by_user.setdefault(e["identifier"].split(":")[1], []).append(e)
    assert sorted(by_user) == sorted([a_id, b_id])
    assert [e["identifier"].rsplit(":", 1)[1] for e in by_user[b_id]] == ["0-7", "7-10"]
    assert [(e["payload"]["value"], e["event_name"]) for e in by_user[a_id]] == [("1500", "api_calls")]
    assert all(e["timestamp"] == clock.now_ms() // 1000 for e in stripe_fake.meter_events)
    # what was sent is what Stripe's meter holds: the excess, each call once
    [a_customer] = {e["payload"]["stripe_customer_id"] for e in by_user[a_id]}
    assert stripe_fake.usage(a_customer) == 1_500


class CrashingGateway(StripeGateway):
    """Stripe takes the event, then the process dies before it records that (after `after` events)."""

    def __init__(self, base: StripeGateway, after: int) -> None:
        super().__init__(base.settings)
        self.left = after

    async def meter_event(self, **kwargs: object) -> None:  # type: ignore[override]
        await super().meter_event(**kwargs)  # type: ignore[arg-type]
        self.left -= 1
        if self.left < 0:
            raise SystemExit("killed mid-batch")


async def test_a_batch_that_crashed_half_way_is_sent_again_and_stripe_counts_each_call_once(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe) -> None:
    users = [(await subscriber(client, sink, f"crash{i}@example.com"))[0] for i in range(3)]
    for i, user in enumerate(users):
        await bring_to(runtime.services.metering, user, PRO_QUOTA + 100 * (i + 1))
    first = ApiMetering(runtime.sessions, runtime.clock, runtime.settings,
                        CrashingGateway(runtime.services.payments.gateway, after=1))
    with pytest.raises(SystemExit):
        await first.report()  # the 1st sent and recorded, the 2nd taken by Stripe but not recorded, the 3rd not sent
    assert len(stripe_fake.meter_events) == 2
    second = ApiMetering(runtime.sessions, runtime.clock, runtime.settings, runtime.services.payments.gateway)
    assert await second.report() == 2  # the two unrecorded, with their identifiers; none prepared anew
    assert len(stripe_fake.meter_events) == 3
    replayed = [r for r in stripe_fake.requests if r[1] == "/v1/billing/meter_events"]
    assert len(replayed) == 4 and len({r[3] for r in replayed}) == 3  # one sent twice, same Idempotency-Key
    assert sorted(int(e["payload"]["value"]) for e in stripe_fake.meter_events) == [100, 200, 300]
    assert await second.report() == 0


async def die(duty: PeriodicDuty) -> None:
    """The holder's process is killed: its loops end, no renewal, no release (the lease is left to expire)."""
    assert duty.lease._task is not None
    duty.lease._task.cancel()
    await duty._stop_here()
    duty.lease._task, duty.lease.held = None, False


async def test_reporting_runs_on_the_lease_holder_and_a_takeover_carries_on(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe, clock: FakeClock) -> None:
    user_id, _ = await subscriber(client, sink, "lease@example.com")
    leases = InProcessLeaseStore(clock)
    every = int(runtime.settings.api_meter_report_s * 1000)
    make = [ApiMetering(runtime.sessions, clock, runtime.settings, runtime.services.payments.gateway)
            for _ in range(2)]
    a = PeriodicDuty(leases, METER_LEASE, make[0].report, every_ms=every, ttl_ms=15_000, clock=clock)
    b = PeriodicDuty(leases, METER_LEASE, make[1].report, every_ms=every, ttl_ms=15_000, clock=clock)
    await a.start()
    await b.start()
    try:
        assert a.lease.held and not b.lease.held
        await clock.parked(3)  # both keepers and the holder's duty wait for their next time
        await bring_to(runtime.services.metering, user_id, PRO_QUOTA + 40)
        clock.advance(every)
        await eventually(lambda: len(stripe_fake.meter_events) == 1, what="the holder to report")
        await die(a)
        runtime.services.metering.count(user_id, 60)
        await runtime.services.metering.flush()
        clock.advance(20_000)  # past the TTL: the other worker takes the lease, then its first step reports
        await eventually(lambda: b.lease.held, what="the takeover")
        await eventually(lambda: len(stripe_fake.meter_events) == 2, what="the new holder to report")
        assert [e["identifier"].rsplit(":", 1)[1] for e in stripe_fake.meter_events] == ["0-40", "40-100"]
    finally:
        await a.stop()
        await b.stop()


async def test_the_metered_price_joins_each_subscription_and_events_go_to_the_configured_meter(
        client: httpx.AsyncClient, sink: Sink, runtime: Runtime, stripe_fake: FakeStripe) -> None:
    runtime.settings.stripe_price_api_calls = "price_api_metered"
    stripe_fake.prices["price_api_metered"] = Price(1, recurring=True)
    stripe_fake.meters = {"api_requests"}  # the account's one meter
    user_id, headers = await subscriber(client, sink, "meter@example.com")
    [sub] = stripe_fake.subscriptions.values()
    assert [i["price"]["id"] for i in sub["items"]["data"]] == ["price_pro_m", "price_api_metered"]
    await pay(client, headers, {"credit_pack": "credits_100"})  # a one-off payment carries no metered price
    [session] = [s for s in stripe_fake.sessions.values() if s.get("mode") == "payment"]
    assert session["_extra_prices"] == []
    metering = runtime.services.metering
    await bring_to(metering, user_id, PRO_QUOTA + 5)
    assert await metering.report() == 0  # "api_calls" names no meter of this account: refused, kept unsent
    assert stripe_fake.meter_events == []
    runtime.settings.stripe_meter_event_name = "api_requests"  # the operator fixes the setting
    assert await metering.report() == 1  # the kept report goes out under it
    assert [(e["event_name"], e["payload"]["value"]) for e in stripe_fake.meter_events] == [("api_requests", "5")]


def test_month_bounds() -> None:
    from marketpulse.payments.core import period_bounds

    start, end = period_bounds(1_760_126_400_000)  # 2025-10-10
    assert (usage_period(start), usage_period(start - 1), usage_period(end), usage_period(end - 1)) == (
        "2025-10", "2025-09", "2025-11", "2025-10")
    assert period_bounds(1_765_000_000_000)[1] == 1_767_225_600_000  # December ends at 2026-01-01
