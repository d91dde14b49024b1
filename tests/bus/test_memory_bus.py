"""What the in-process bus adds to the contract: bounded groups that drop the oldest instead of blocking."""

from __future__ import annotations

import asyncio

from marketpulse.bus import Handler, Message
from marketpulse.bus.memory import MemoryBus
from support.topics import T


async def test_full_group_drops_oldest_and_never_blocks_the_publisher() -> None:
    bus = MemoryBus(maxsize=3)
    first = await bus.subscribe(T("t"), "g", lambda m: asyncio.sleep(0))
    await first.close()  # the group outlives its only consumer, like a Redis consumer group
    for n in range(5):
        await asyncio.wait_for(bus.publish(T("t"), {"n": n}), 1)  # a wait here would mean publish blocked
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    await bus.subscribe(T("t"), "g", handle)
    await bus.drained()
    assert [m.data["n"] for m in seen] == [2, 3, 4]
    await bus.close()


async def test_handlers_get_their_own_copy_of_the_payload() -> None:
    bus = MemoryBus()
    got: dict[str, list[Message]] = {"a": [], "b": []}

    def into(name: str) -> Handler:
        async def handle(message: Message) -> None:
            message.data["rows"].append("mutated by " + name)
            got[name].append(message)

        return handle

    await bus.subscribe(T("t"), "a", into("a"))
    await bus.subscribe(T("t"), "b", into("b"))
    payload = {"rows": [1]}
    await bus.publish(T("t"), payload)
    await bus.drained()
    assert got["a"][0].data == {"rows": [1, "mutated by a"]}
    assert got["b"][0].data == {"rows": [1, "mutated by b"]}
    assert payload == {"rows": [1]}
    await bus.close()


async def test_drained_waits_for_handlers_what_they_publish_and_redeliveries() -> None:
    bus = MemoryBus(redelivery_delay_s=0.01)
    release = asyncio.Event()
    log: list[str] = []

    async def slow(message: Message) -> None:
        await release.wait()
        await bus.publish(T("next"), {"from": "slow"})
        log.append("slow")

    async def flaky(message: Message) -> None:
        if message.deliveries == 1:
            raise RuntimeError("once")
        log.append("flaky, again")

    async def follow(message: Message) -> None:
        log.append("follow")

    await bus.subscribe(T("t"), "slow", slow)
    await bus.subscribe(T("t"), "flaky", flaky)
    await bus.subscribe(T("next"), "follow", follow)
    await bus.publish(T("t"), {})
    draining = asyncio.create_task(bus.drained())
    release.set()  # let go at once: drained must wait for the chain, not return before the handler ran
    await draining
    assert sorted(log) == ["flaky, again", "follow", "slow"]
    await bus.close()


async def test_fake_clock_parked_means_the_sleeper_did_what_was_due() -> None:
    from marketpulse.clock import FakeClock

    clock = FakeClock(0)
    ticks: list[int] = []

    async def every_second() -> None:
        while True:
            await clock.sleep_until((clock.now_ms() // 1000 + 1) * 1000)
            ticks.append(clock.now_ms())

    task = asyncio.create_task(every_second())
    await clock.parked()
    clock.advance(1000)
    await clock.parked()  # not the stale sleep (deadline 1000 is due): the next one, after the tick
    assert ticks == [1000]
    task.cancel()
