"""The bus contract (`marketpulse.bus.base`), run against the in-process and the Redis Streams implementation."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from marketpulse.bus import EventBus, Message, create_bus
from marketpulse.bus.memory import MemoryBus
from marketpulse.bus.redis_streams import RedisStreamsBus

MAX_DELIVERIES = 3
REDIS_URL = os.environ.get("PULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")  # as tests/conftest.py


async def flush_redis() -> None:
    client = redis.from_url(REDIS_URL)
    await client.flushdb()
    await client.aclose()


async def eventually(condition: Callable[[], bool], what: str, limit_s: float = 5.0) -> None:
    """Wait for `condition`; the limit only turns a hang into a readable failure (no timing is asserted)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[MemoryBus | RedisStreamsBus]:
    impl: MemoryBus | RedisStreamsBus
    if request.param == "memory":
        impl = MemoryBus(max_deliveries=MAX_DELIVERIES, redelivery_delay_s=0.01)
    else:
        # Not the `redis_url` fixture: an async fixture cannot be requested lazily from another one.
        url = REDIS_URL
        await flush_redis()
        # Small reads so two consumers of a group really interleave; short idle so claims happen within the test.
        impl = RedisStreamsBus(url, claim_idle_ms=250, block_ms=50, read_count=4, max_deliveries=MAX_DELIVERIES)
    yield impl
    await impl.close()
    if request.param == "redis":
        await flush_redis()


def recorder(into: list[Message]) -> Callable[[Message], Any]:
    async def handle(message: Message) -> None:
        into.append(message)

    return handle


async def test_delivers_messages_published_after_subscribe_in_order_per_topic(bus: EventBus) -> None:
    await bus.publish("ticks", {"n": -1})  # before the group exists: not for it
    seen: list[Message] = []
    await bus.subscribe("ticks", "g", recorder(seen))
    await bus.subscribe("candles", "g", recorder(seen))
    for n in range(30):
        await bus.publish("ticks", {"n": n, "rows": [{"symbol": "BTCUSDT", "price": 1.5 * n}]})
        await bus.publish("candles", {"n": n})
    await eventually(lambda: len(seen) == 60, "60 messages")
    ticks = [m for m in seen if m.topic == "ticks"]
    assert [m.data["n"] for m in ticks] == list(range(30))
    assert ticks[3].data["rows"] == [{"symbol": "BTCUSDT", "price": 4.5}]
    assert [m.data["n"] for m in seen if m.topic == "candles"] == list(range(30))
    assert all(m.deliveries == 1 for m in seen)


async def test_publish_returns_increasing_ids(bus: EventBus) -> None:
    ids = [await bus.publish("t", {"i": i}) for i in range(3)]
    assert len(set(ids)) == 3
    assert ids == sorted(ids, key=lambda i: tuple(int(part) for part in i.split("-")))


async def test_every_group_receives_every_message(bus: EventBus) -> None:
    alerts: list[Message] = []
    recorder_: list[Message] = []
    await bus.subscribe("alerts", "notifier", recorder(alerts))
    await bus.subscribe("alerts", "store", recorder(recorder_))
    for n in range(10):
        await bus.publish("alerts", {"n": n})
    await eventually(lambda: len(alerts) == 10 and len(recorder_) == 10, "both groups to get 10")
    assert [m.data["n"] for m in alerts] == [m.data["n"] for m in recorder_] == list(range(10))


async def test_consumers_of_one_group_share_messages(bus: EventBus) -> None:
    handled_by: dict[int, list[str]] = {}

    def consumer(name: str) -> Callable[[Message], Any]:
        async def handle(message: Message) -> None:
            handled_by.setdefault(message.data["n"], []).append(name)
            await asyncio.sleep(0.005)  # a handler that takes a moment, so the other consumer gets work

        return handle

    await bus.subscribe("jobs", "workers", consumer("a"), consumer="a")
    await bus.subscribe("jobs", "workers", consumer("b"), consumer="b")
    for n in range(40):
        await bus.publish("jobs", {"n": n})
    await eventually(lambda: len(handled_by) == 40, "40 distinct messages")
    await asyncio.sleep(0.05)  # room for a wrong duplicate delivery to show up
    assert all(len(names) == 1 for names in handled_by.values()), "a message was handled twice"
    assert Counter(names[0] for names in handled_by.values()).keys() == {"a", "b"}


async def test_handler_that_raises_gets_the_message_again(bus: EventBus) -> None:
    attempts: list[Message] = []

    async def flaky(message: Message) -> None:
        attempts.append(message)
        if len(attempts) == 1:
            raise RuntimeError("store unavailable")

    await bus.subscribe("alerts", "store", flaky)
    msg_id = await bus.publish("alerts", {"symbol": "BTCUSDT"})
    await eventually(lambda: len(attempts) == 2, "redelivery")
    assert [(m.id, m.deliveries) for m in attempts] == [(msg_id, 1), (msg_id, 2)]
    assert attempts[1].data == {"symbol": "BTCUSDT"}


async def test_poison_message_goes_to_dead_letters_after_max_deliveries(bus: MemoryBus | RedisStreamsBus) -> None:
    attempts: list[int] = []
    good: list[Message] = []

    async def broken(message: Message) -> None:
        if message.data.get("poison"):
            attempts.append(message.deliveries)
            raise ValueError("cannot parse")
        good.append(message)

    await bus.subscribe("alerts", "store", broken)
    poison_id = await bus.publish("alerts", {"poison": True})
    await bus.publish("alerts", {"poison": False})
    await eventually(lambda: len(good) == 1, "the healthy message behind the poison one")
    dead: list[Message] = []

    async def collect_dead() -> None:
        dead[:] = await bus.dead_letters("alerts")

    async def dead_arrived() -> bool:
        await collect_dead()
        return bool(dead)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not await dead_arrived():  # noqa: ASYNC110 - polling the bus is the point
        assert loop.time() < deadline, "poison message never reached the dead letters"
        await asyncio.sleep(0.01)
    assert attempts == [1, 2, 3]
    assert [(m.id, m.data, m.deliveries) for m in dead] == [(poison_id, {"poison": True}, MAX_DELIVERIES + 1)]


async def test_crashed_consumers_message_goes_to_another_consumer(bus: MemoryBus | RedisStreamsBus) -> None:
    started: list[Message] = []
    never = asyncio.Event()

    async def hangs(message: Message) -> None:
        started.append(message)
        await never.wait()

    doomed = await bus.subscribe("jobs", "workers", hangs, consumer="doomed")
    msg_id = await bus.publish("jobs", {"job": 1})
    await eventually(lambda: len(started) == 1, "the first consumer to take the message")
    rescued: list[Message] = []
    await bus.subscribe("jobs", "workers", recorder(rescued), consumer="rescuer")
    doomed.abort()  # type: ignore[attr-defined]  # both implementations offer it to simulate a crash
    await eventually(lambda: len(rescued) == 1, "another consumer to take over the message")
    assert (rescued[0].id, rescued[0].data, rescued[0].deliveries) == (msg_id, {"job": 1}, 2)


async def test_close_lets_the_running_handler_finish_and_stops_delivery(bus: EventBus) -> None:
    release = asyncio.Event()
    finished: list[int] = []
    seen: list[Message] = []

    async def slow(message: Message) -> None:
        seen.append(message)
        await release.wait()
        finished.append(message.data["n"])

    sub = await bus.subscribe("jobs", "slow", slow)
    watcher: list[Message] = []
    await bus.subscribe("jobs", "watch", recorder(watcher))
    await bus.publish("jobs", {"n": 1})
    await eventually(lambda: len(seen) == 1, "the handler to start")
    closing = asyncio.create_task(sub.close())
    await asyncio.sleep(0.02)
    assert not closing.done(), "close returned while the handler was still running"
    release.set()
    await closing
    assert finished == [1]
    await bus.publish("jobs", {"n": 2})
    await eventually(lambda: len(watcher) == 2, "the other group to get the next message")
    assert [m.data["n"] for m in seen] == [1]


async def test_bus_close_stops_every_consumer_task(bus: EventBus) -> None:
    for group in ("a", "b", "c"):
        await bus.subscribe("t", group, recorder([]))
    assert any(t.get_name().startswith("bus:") for t in asyncio.all_tasks())
    await bus.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("bus:") and not t.done()]


async def test_non_json_payload_is_refused_at_publish(bus: EventBus) -> None:
    with pytest.raises(TypeError):
        await bus.publish("t", {"when": object()})


async def test_ping(bus: EventBus) -> None:
    assert await bus.ping() is True


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://", MemoryBus),
        ("redis://127.0.0.1:6379/15", RedisStreamsBus),
        ("unix:///tmp/redis.sock", RedisStreamsBus),
    ],
)
async def test_factory_picks_implementation_by_url(url: str, kind: type[EventBus]) -> None:
    bus = create_bus(url)
    try:
        assert isinstance(bus, kind)
    finally:
        await bus.close()


@pytest.mark.parametrize("url", ["kafka://broker:9092", "", "memory:/", "REDIS//x"])
def test_factory_rejects_unknown_schemes_naming_the_url(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported scheme") as err:
        create_bus(url)
    assert repr(url) in str(err.value)


async def test_a_closed_ephemeral_group_is_gone_but_a_durable_group_keeps_what_was_published(bus: EventBus) -> None:
    # A per-process group (ephemeral) must not outlive its process: nothing queues for it after close. A shared,
    # durable group keeps messages published while nobody consumed, for the next consumer to pick up.
    for ephemeral in (True, False):
        group = f"g-{ephemeral}"
        first = await bus.subscribe("t.ephemeral", group, recorder([]), ephemeral=ephemeral)
        await first.close()
        await bus.publish("t.ephemeral", {"while": "closed", "ephemeral": ephemeral})
        got: list[Message] = []
        second = await bus.subscribe("t.ephemeral", group, recorder(got), ephemeral=ephemeral)
        await bus.publish("t.ephemeral", {"while": "open", "ephemeral": ephemeral})
        await eventually(lambda got=got: any(m.data["while"] == "open" for m in got), "the message after resubscribe")
        await asyncio.sleep(0.05)
        seen = [m.data["while"] for m in got]
        await second.close()
        assert seen == (["open"] if ephemeral else ["closed", "open"]), (ephemeral, seen)
