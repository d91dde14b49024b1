"""10,000 matches in a burst, two dispatchers side by side: every notification delivered once, and each user's
in the order their matches were enqueued (per destination)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from fakes.providers import FakeProviders
from marketpulse.clock import SystemClock
from marketpulse.delivery.dispatcher import Dispatcher
from marketpulse.delivery.outbox import enqueue
from marketpulse.runtime import Runtime

from .helpers import NO_JITTER, add_destination, notifications

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

USERS, MATCHES = 40, 250  # 10,000 notifications


async def test_ten_thousand_matches_arrive_once_each_in_order_per_user(runtime: Runtime,
                                                                      fake: FakeProviders) -> None:
    for u in range(USERS):
        await add_destination(runtime, f"d{u}", f"user-{u}", address=fake.url(f"/hook/{u}"))
    for i in range(MATCHES):
        async with runtime.sessions.begin() as s:
            for u in range(USERS):
                await enqueue(s, owner_id=f"user-{u}", rule_id=f"r{u}", event_key=f"m{i}",
                              destination_ids=[f"d{u}"], message={"title": f"{u}", "text": f"{i}"})
    runtime.settings.delivery_batch_size = 500
    runtime.settings.delivery_timeout_s = 30  # a loaded machine's slow answer must not turn into a retry (a repeat)
    wall = SystemClock()  # both dispatchers on real time: leases must not expire under them
    dispatchers = [Dispatcher(runtime.sessions, wall, runtime.settings, schedule=NO_JITTER, name=f"d{n}")
                   for n in range(2)]

    async def drain(d: Dispatcher) -> None:
        while len(fake.of("webhook")) < USERS * MATCHES:
            if not await d.run_once():
                await asyncio.sleep(0.01)

    async with asyncio.timeout(500):
        await asyncio.gather(*(drain(d) for d in dispatchers))
    for d in dispatchers:
        await d.close()
    got = fake.of("webhook")
    assert max(Counter(r.headers["Idempotency-Key"] for r in got).values()) == 1
    per_user: dict[str, list[int]] = {}
    for r in got:
        body = r.json()
        per_user.setdefault(body["title"], []).append(int(body["text"]))
    assert per_user == {f"{u}": list(range(MATCHES)) for u in range(USERS)}
    rows = await notifications(runtime)
    assert Counter(r.status for r in rows) == {"sent": USERS * MATCHES}
