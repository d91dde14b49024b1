"""Leases: one holder at a time, renewed while alive, taken over within the TTL when the holder dies, given up on
shutdown. Expiry and takeover run on an injected clock; the Redis store is checked against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from marketpulse.clock import FakeClock
from marketpulse.coordination.lease import InProcessLeaseStore, LeaseKeeper, LeaseStore, RedisLeaseStore, lease_store
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.runner import PaperRunner
from support.waiting import eventually

TTL = 15_000
STEP = TTL // 3


class Duty:
    """Records when a keeper starts and stops its duty."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")

    @property
    def running(self) -> bool:
        return bool(self.events) and self.events[-1] == "start"


def keeper(store: LeaseStore, clock: FakeClock, name: str) -> tuple[LeaseKeeper, Duty]:
    duty = Duty()
    return LeaseKeeper(store, "paper-trading", ttl_ms=TTL, clock=clock, on_acquired=duty.start,
                       on_lost=duty.stop, holder=name), duty


async def step(clock: FakeClock, *keepers: LeaseKeeper) -> None:
    """Advance one attempt interval and wait until each running keeper has made its attempt at the new time."""
    before = [k.attempts for k in keepers]
    clock.advance(STEP)
    for k, n in zip(keepers, before, strict=True):
        await eventually(lambda k=k, n=n: k.attempts > n, what=f"{k.holder}'s attempt")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000_000)


async def test_one_holder_at_a_time_and_renewal_keeps_it(clock: FakeClock) -> None:
    store = InProcessLeaseStore(clock)
    a, duty_a = keeper(store, clock, "a")
    b, duty_b = keeper(store, clock, "b")
    await a.start()
    await b.start()
    assert (a.held, b.held) == (True, False)
    for _ in range(10):  # far past one TTL: a's renewals keep it
        await step(clock, a, b)
        assert (a.held, b.held) == (True, False)
    assert duty_a.events == ["start"] and duty_b.events == []
    await a.stop()
    await b.stop()


async def test_a_dead_holder_is_replaced_within_the_ttl(clock: FakeClock) -> None:
    store = InProcessLeaseStore(clock)
    a, _ = keeper(store, clock, "a")
    b, duty_b = keeper(store, clock, "b")
    await a.start()
    await b.start()
    assert a._task is not None
    a._task.cancel()  # SIGKILL: no more renewals, nothing given up
    died_at = clock.now_ms()
    while not b.held:
        await step(clock, b)
        assert clock.now_ms() - died_at <= TTL + STEP, "b did not take over within the TTL and one attempt"
    assert clock.now_ms() - died_at >= TTL  # and not before a's last renewal expired
    assert duty_b.events == ["start"]
    await b.stop()


async def test_a_frozen_holder_that_wakes_up_stops_its_duty(clock: FakeClock) -> None:
    store = InProcessLeaseStore(clock)
    a, duty_a = keeper(store, clock, "a")
    b, duty_b = keeper(store, clock, "b")
    await a.start()
    await b.start()
    assert a._task is not None
    a._task.cancel()  # frozen (SIGSTOP): it still believes it holds the lease
    while not b.held:
        await step(clock, b)
    await a.attempt()  # it wakes up and tries to renew
    assert not a.held and duty_a.events == ["start", "stop"]
    assert duty_b.running
    await b.stop()


async def test_shutdown_stops_the_duty_then_releases_so_the_next_takes_over_at_once(clock: FakeClock) -> None:
    store = InProcessLeaseStore(clock)
    a, duty_a = keeper(store, clock, "a")
    b, duty_b = keeper(store, clock, "b")
    await a.start()
    await b.start()
    await a.stop()
    assert duty_a.events == ["start", "stop"] and store.holder("paper-trading") is None
    await step(clock, b)  # b's next attempt, one interval later, not one TTL later
    assert b.held and duty_b.running
    await b.stop()


async def test_a_duty_that_fails_to_start_gives_the_lease_up(clock: FakeClock) -> None:
    store = InProcessLeaseStore(clock)

    async def broken() -> None:
        raise RuntimeError("database down")

    stopped: list[bool] = []

    async def on_lost() -> None:
        stopped.append(True)

    a = LeaseKeeper(store, "paper-trading", ttl_ms=TTL, clock=clock, on_acquired=broken, on_lost=on_lost,
                    holder="a")
    b, duty_b = keeper(store, clock, "b")
    await a.start()
    assert not a.held and stopped == [True] and store.holder("paper-trading") is None
    await b.start()
    assert b.held and duty_b.running
    await a.stop()
    await b.stop()


class FlakyStore(InProcessLeaseStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.down = False

    async def acquire(self, name: str, holder: str, ttl_ms: int) -> bool:
        if self.down:
            raise ConnectionError("lease store unreachable")
        return await super().acquire(name, holder, ttl_ms)


async def test_an_unreachable_store_keeps_the_duty_only_until_the_lease_could_expire(clock: FakeClock) -> None:
    store = FlakyStore(clock)
    a, duty_a = keeper(store, clock, "a")
    await a.start()
    store.down = True
    await step(clock, a)  # one missed renewal: the lease still has 2/3 of its TTL
    assert a.held
    await step(clock, a)  # the next would be too late: stop before another may take it
    assert not a.held and duty_a.events == ["start", "stop"]
    store.down = False
    await step(clock, a)
    assert a.held and duty_a.events == ["start", "stop", "start"]
    await a.stop()


def test_the_store_follows_the_bus(clock: FakeClock) -> None:
    assert isinstance(lease_store("memory://", clock), InProcessLeaseStore)
    assert isinstance(lease_store("redis://127.0.0.1:6379/0", clock), RedisLeaseStore)


@pytest.mark.parametrize(("deployment", "prefix"), [(None, "pulse:lease:"), ("eu-prod", "pulse:eu-prod:lease:")])
def test_a_named_deployments_leases_are_its_own(clock: FakeClock, deployment: str | None, prefix: str) -> None:
    # Two deployments on one Redis must each elect their own paper-trading leader.
    store = lease_store("redis://127.0.0.1:6379/0", clock, deployment)
    assert isinstance(store, RedisLeaseStore) and store.prefix == prefix


# --- Redis --------------------------------------------------------------------------------------------------------
@pytest.fixture
async def redis_store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisLeaseStore]:
    store = RedisLeaseStore(redis_url, prefix=f"{redis_prefix}lease:")
    yield store
    await store.close()


@pytest.mark.redis
async def test_redis_one_holder_renewal_and_release(redis_store: RedisLeaseStore) -> None:
    assert await redis_store.acquire("job", "a", 10_000)
    assert not await redis_store.acquire("job", "b", 10_000)
    assert await redis_store.acquire("job", "a", 10_000)  # a renews its own
    await redis_store.release("job", "b")  # not b's to give up
    assert await redis_store.holder("job") == "a"
    await redis_store.release("job", "a")
    assert await redis_store.holder("job") is None
    assert await redis_store.acquire("job", "b", 10_000)


@pytest.mark.redis
async def test_redis_lease_expires_on_its_own_when_the_holder_stops_renewing(redis_store: RedisLeaseStore) -> None:
    assert await redis_store.acquire("job", "a", 200)
    assert await redis_store.client.pttl(redis_store.prefix + "job") > 0  # expiry is Redis's: no clocks compared
    assert await eventually(lambda: redis_store.acquire("job", "b", 10_000), deadline_s=5, every_s=0.05,
                            what="b takes the expired lease")
    assert not await redis_store.acquire("job", "a", 10_000)  # a, back from the dead, can't renew b's


@pytest.mark.redis
async def test_redis_keepers_elect_one_and_hand_over(redis_store: RedisLeaseStore) -> None:
    clock = FakeClock(0)  # paces the attempts only: expiry is on Redis's clock
    keepers = [keeper(redis_store, clock, name) for name in ("a", "b", "c")]
    for k, _ in keepers:
        await k.start()
    assert [k.held for k, _ in keepers] == [True, False, False]
    await keepers[0][0].stop()  # graceful: released, the next attempt of another takes it
    await step(clock, keepers[1][0], keepers[2][0])
    assert sum(k.held for k, _ in keepers) == 1
    for k, _ in keepers:
        await k.stop()


async def test_paper_trading_runs_under_a_lease_of_the_configured_ttl(runtime: Runtime) -> None:
    """PULSE_LEASE_TTL_S sets the paper runner's lease; the first worker takes it, a second one waits."""
    runtime.settings.lease_ttl_s = 6.0
    first, second = PaperRunner(runtime), PaperRunner(runtime)
    await first.start()
    await second.start()
    try:
        assert first.lease.ttl_ms == 6_000 and first.lease.interval_ms == 2_000
        assert first.lease.held and not second.lease.held
    finally:
        await second.stop()
        await first.stop()
    assert not first.lease.held


async def test_shutdown_lets_a_duty_that_is_starting_finish_before_stopping_it(clock: FakeClock) -> None:
    """Cancelled half-way, a duty's start could leave a database call cut (SQLAlchemy then logs an error)."""
    store = InProcessLeaseStore(clock)
    a, _ = keeper(store, clock, "a")
    release_start = asyncio.Event()
    started: list[str] = []

    async def slow_start() -> None:
        started.append("begun")
        await release_start.wait()
        started.append("done")

    async def on_lost() -> None:
        started.append("stopped")

    b = LeaseKeeper(store, "paper-trading", ttl_ms=TTL, clock=clock, on_acquired=slow_start, on_lost=on_lost,
                    holder="b")
    await a.start()
    await b.start()
    await a.stop()
    clock.advance(STEP)  # b's next attempt takes the lease and starts its duty
    await eventually(lambda: started == ["begun"], what="b's duty starting")
    stopping = asyncio.create_task(b.stop())
    await eventually(lambda: b._attempting.locked(), what="b's attempt in flight")
    release_start.set()
    await stopping
    assert started == ["begun", "done", "stopped"]
