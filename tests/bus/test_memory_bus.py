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
    async with asyncio.timeout(5):
        while len(seen) < 3:  # noqa: ASYNC110 - waiting on the consumer task
            await asyncio.sleep(0.005)
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
    async with asyncio.timeout(5):
        while not (got["a"] and got["b"]):  # noqa: ASYNC110 - waiting on the consumer tasks
            await asyncio.sleep(0.005)
    assert got["a"][0].data == {"rows": [1, "mutated by a"]}
    assert got["b"][0].data == {"rows": [1, "mutated by b"]}
    assert payload == {"rows": [1]}
    await bus.close()
