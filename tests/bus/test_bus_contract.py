"""The bus contract (`marketpulse.bus.base`), run against the in-process and the Redis Streams implementation."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import orjson
import pytest
from prometheus_client import REGISTRY

from marketpulse.bus import DeadLetter, EventBus, Message, create_bus, key_prefix, topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.bus.redis_streams import RedisStreamsBus
from marketpulse.bus.topics import Topic
from marketpulse.marketdata.models import Candle
from support.redis_ns import REDIS_URL, new_deployment, unlink_namespace
from support.topics import T
from support.waiting import eventually

MAX_DELIVERIES = 3


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[MemoryBus | RedisStreamsBus]:
    impl: MemoryBus | RedisStreamsBus
    if request.param == "memory":
        impl = MemoryBus(max_deliveries=MAX_DELIVERIES, redelivery_delay_s=0.01)
    else:
        # Not the `redis_url` fixture: an async fixture cannot be requested lazily from another one.
        deployment = new_deployment("bus")
        # Small reads so two consumers of a group really interleave; short idle so claims happen within the test.
        impl = RedisStreamsBus(REDIS_URL, stream_prefix=key_prefix(deployment), claim_idle_ms=250, block_ms=50,
                               read_count=4, max_deliveries=MAX_DELIVERIES)
    yield impl
    await impl.close()
    if request.param == "redis":
        await unlink_namespace(REDIS_URL, deployment)


def recorder(into: list[Message]) -> Callable[[Message], Any]:
    async def handle(message: Message) -> None:
        into.append(message)

    return handle


async def test_delivers_messages_published_after_subscribe_in_order_per_topic(bus: EventBus) -> None:
    await bus.publish(T("ticks"), {"n": -1})  # before the group exists: not for it
    seen: list[Message] = []
    await bus.subscribe(T("ticks"), "g", recorder(seen))
    await bus.subscribe(T("candles"), "g", recorder(seen))
    for n in range(30):
        await bus.publish(T("ticks"), {"n": n, "rows": [{"symbol": "BTCUSDT", "price": 1.5 * n}]})
        await bus.publish(T("candles"), {"n": n})
    await eventually(lambda: len(seen) == 60, what="60 messages")
    ticks = [m for m in seen if m.topic == "ticks"]
    assert [m.data["n"] for m in ticks] == list(range(30))
    assert ticks[3].data["rows"] == [{"symbol": "BTCUSDT", "price": 4.5}]
    assert [m.data["n"] for m in seen if m.topic == "candles"] == list(range(30))
    assert all(m.deliveries == 1 for m in seen)


async def test_publish_returns_increasing_ids(bus: EventBus) -> None:
    ids = [await bus.publish(T("t"), {"i": i}) for i in range(3)]
    assert len(set(ids)) == 3
    assert ids == sorted(ids, key=lambda i: tuple(int(part) for part in i.split("-")))


async def test_every_group_receives_every_message(bus: EventBus) -> None:
    alerts: list[Message] = []
    recorder_: list[Message] = []
    await bus.subscribe(T("alerts"), "notifier", recorder(alerts))
    await bus.subscribe(T("alerts"), "store", recorder(recorder_))
    for n in range(10):
        await bus.publish(T("alerts"), {"n": n})
    await eventually(lambda: len(alerts) == 10 and len(recorder_) == 10, what="both groups to get 10")
    assert [m.data["n"] for m in alerts] == [m.data["n"] for m in recorder_] == list(range(10))


async def test_consumers_of_one_group_share_messages(bus: EventBus) -> None:
    handled_by: dict[int, list[str]] = {}

    def consumer(name: str) -> Callable[[Message], Any]:
        async def handle(message: Message) -> None:
            handled_by.setdefault(message.data["n"], []).append(name)
            await asyncio.sleep(0.005)  # a handler that takes a moment, so the other consumer gets work

        return handle

    await bus.subscribe(T("jobs"), "workers", consumer("a"), consumer="a")
    await bus.subscribe(T("jobs"), "workers", consumer("b"), consumer="b")
    for n in range(40):
        await bus.publish(T("jobs"), {"n": n})
    await eventually(lambda: len(handled_by) == 40, what="40 distinct messages")
    # Drain instead of waiting a while: each consumer handles its deliveries in stream order, so once both have
    # handled a marker published after the jobs, any wrong second delivery of a job would already be recorded.
    markers = iter(range(-1, -1_000, -1))

    async def both_past_the_jobs() -> bool:
        await bus.publish(T("jobs"), {"n": next(markers)})
        return {name for n, names in handled_by.items() if n < 0 for name in names} == {"a", "b"}

    await eventually(both_past_the_jobs, what="each consumer to handle a marker published after the jobs")
    assert all(len(names) == 1 for names in handled_by.values()), "a message was handled twice"
    assert Counter(names[0] for n, names in handled_by.items() if n >= 0).keys() == {"a", "b"}


async def test_handler_that_raises_gets_the_message_again(bus: EventBus) -> None:
    attempts: list[Message] = []

    async def flaky(message: Message) -> None:
        attempts.append(message)
        if len(attempts) == 1:
            raise RuntimeError("store unavailable")

    await bus.subscribe(T("alerts"), "store", flaky)
    msg_id = await bus.publish(T("alerts"), {"symbol": "BTCUSDT"})
    await eventually(lambda: len(attempts) == 2, what="redelivery")
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

    await bus.subscribe(T("alerts"), "store", broken)
    poison_id = await bus.publish(T("alerts"), {"poison": True})
    await bus.publish(T("alerts"), {"poison": False})
    await eventually(lambda: len(good) == 1, what="the healthy message behind the poison one")
    dead: list[DeadLetter] = []

    async def collect_dead() -> None:
        dead[:] = await bus.dead_letters(T("alerts"))

    async def dead_arrived() -> bool:
        await collect_dead()
        return bool(dead)

    await eventually(dead_arrived, what="the poison message in the dead letters")
    assert attempts == [1, 2, 3]
    assert [(m.id, orjson.loads(m.payload), m.deliveries) for m in dead] == [
        (poison_id, {"poison": True}, MAX_DELIVERIES + 1)
    ]
    assert dead[0].reason == f"delivered more than {MAX_DELIVERIES} times" and dead[0].group == "store"


async def test_crashed_consumers_message_goes_to_another_consumer(bus: MemoryBus | RedisStreamsBus) -> None:
    started: list[Message] = []
    never = asyncio.Event()

    async def hangs(message: Message) -> None:
        started.append(message)
        await never.wait()

    doomed = await bus.subscribe(T("jobs"), "workers", hangs, consumer="doomed")
    msg_id = await bus.publish(T("jobs"), {"job": 1})
    await eventually(lambda: len(started) == 1, what="the first consumer to take the message")
    rescued: list[Message] = []
    await bus.subscribe(T("jobs"), "workers", recorder(rescued), consumer="rescuer")
    doomed.abort()  # type: ignore[attr-defined]  # both implementations offer it to simulate a crash
    await eventually(lambda: len(rescued) == 1, what="another consumer to take over the message")
    assert (rescued[0].id, rescued[0].data, rescued[0].deliveries) == (msg_id, {"job": 1}, 2)


async def test_close_lets_the_running_handler_finish_and_stops_delivery(bus: EventBus) -> None:
    release = asyncio.Event()
    finished: list[tuple[int, bool]] = []  # (n, whether close had returned by then)
    seen: list[Message] = []
    closing: list[asyncio.Task[None]] = []

    async def slow(message: Message) -> None:
        seen.append(message)
        await release.wait()
        finished.append((message.data["n"], closing[0].done()))

    sub = await bus.subscribe(T("jobs"), "slow", slow)
    watcher: list[Message] = []
    await bus.subscribe(T("jobs"), "watch", recorder(watcher))
    await bus.publish(T("jobs"), {"n": 1})
    await eventually(lambda: len(seen) == 1, what="the handler to start")
    closing.append(asyncio.create_task(sub.close()))
    # Let the handler go at once rather than waiting a while: a close that cancels it leaves `finished` empty, one
    # that returns without waiting for it is recorded as done by the handler.
    release.set()
    await closing[0]
    assert finished == [(1, False)], "close did not let the running handler finish first"
    await bus.publish(T("jobs"), {"n": 2})
    await eventually(lambda: len(watcher) == 2, what="the other group to get the next message")
    assert [m.data["n"] for m in seen] == [1]


async def test_bus_close_stops_every_consumer_task(bus: EventBus) -> None:
    for group in ("a", "b", "c"):
        await bus.subscribe(T("t"), group, recorder([]))
    assert any(t.get_name().startswith("bus:") for t in asyncio.all_tasks())
    await bus.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("bus:") and not t.done()]


async def test_non_json_payload_is_refused_at_publish(bus: EventBus) -> None:
    with pytest.raises(TypeError):
        await bus.publish(T("t"), {"when": object()})


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


async def test_a_named_deployments_streams_are_its_own() -> None:
    # Two deployments on one Redis server (and database) must not consume each other's messages.
    buses = [create_bus("redis://127.0.0.1:6379/0", deployment=name) for name in (None, "eu-prod")]
    try:
        assert [b.stream_key("market.candles") for b in buses] == [  # type: ignore[attr-defined]
            "pulse:market.candles", "pulse:eu-prod:market.candles"]
    finally:
        for b in buses:
            await b.close()


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
        first = await bus.subscribe(T("t.ephemeral"), group, recorder([]), ephemeral=ephemeral)
        await first.close()
        await bus.publish(T("t.ephemeral"), {"while": "closed", "ephemeral": ephemeral})
        got: list[Message] = []
        second = await bus.subscribe(T("t.ephemeral"), group, recorder(got), ephemeral=ephemeral)
        await bus.publish(T("t.ephemeral"), {"while": "open", "ephemeral": ephemeral})
        # One consumer gets the group's messages in order: had "closed" been queued, it is handled before "open".
        await eventually(lambda got=got: any(m.data["while"] == "open" for m in got),
                         what="the message after resubscribe")
        seen = [m.data["while"] for m in got]
        await second.close()
        assert seen == (["open"] if ephemeral else ["closed", "open"]), (ephemeral, seen)


# --- the bad-data rule (topics.py), the same on both buses --------------------------------------------------------


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def dead_letters_of(bus: EventBus, topic: Topic[Any], count: int) -> list[DeadLetter]:
    async def arrived() -> bool:
        return len(await bus.dead_letters(topic)) >= count

    await eventually(arrived, what=f"{count} dead letters of {topic.name}")
    return await bus.dead_letters(topic)


HALT = topics.RiskHalt(owner_id="default", reason="daily_loss_limit", equity=9_000.0, day_start_equity=10_000.0,
                       limit_pct=0.05, halted_until=1_760_140_800_000, time=1_760_130_000_000)


async def test_a_message_that_cannot_be_decoded_goes_to_the_dead_letters_with_its_reason(bus: EventBus) -> None:
    got: list[Message] = []
    await bus.subscribe(topics.RISK_HALTS, "screen", recorder(got))
    schema_before = counted("bus_dead_letters_total", topic="risk.halts", reason="schema")
    json_before = counted("bus_dead_letters_total", topic="risk.halts", reason="not_json")
    wrong_shape = await bus.publish(topics.RISK_HALTS, {"owner_id": "default", "equity": "lots"})
    not_json = await bus.publish(topics.RISK_HALTS, msgspec.Raw(b"{not json"))
    await bus.publish(topics.RISK_HALTS, HALT)
    await eventually(lambda: len(got) == 1, what="the valid message behind the bad ones")
    assert got[0].data == HALT  # the handler gets the typed payload, and never the undecodable ones
    dead = await dead_letters_of(bus, topics.RISK_HALTS, 2)
    assert [(d.id, d.reason.split(":")[0], d.deliveries, d.group) for d in dead] == [
        (wrong_shape, "schema", 1, "screen"), (not_json, "not_json", 1, "screen")
    ]
    assert "equity" in dead[0].reason and dead[1].payload == b"{not json"
    assert counted("bus_dead_letters_total", topic="risk.halts", reason="schema") == schema_before + 1
    assert counted("bus_dead_letters_total", topic="risk.halts", reason="not_json") == json_before + 1


def candle(symbol: str, **fields: Any) -> dict[str, Any]:
    return {"symbol": symbol, "interval": "1m", "open_time": 1_760_130_000_000, "open": 1.0, "high": 2.0, "low": 0.5,
            "close": 1.5, "volume": 10.0, "quote_volume": 15.0, "closed": True, **fields}


async def test_a_batch_keeps_its_valid_rows_and_counts_the_rest(bus: EventBus) -> None:
    got: list[Message] = []
    await bus.subscribe(topics.MARKET_CANDLES, "recorder", recorder(got))
    rejected_before = counted("bus_rejected_rows_total", topic="market.candles")
    rows = [candle("BTCUSDT"), {"symbol": "NOPEUSDT"}, candle("ETHUSDT", volume="ten"), candle("SOLUSDT"), 7,
            candle("ADAUSDT", interval="7m")]
    overflow = orjson.dumps(candle("XRPUSDT")).replace(b'"volume":10.0', b'"volume":1e999')  # JSON can say it
    raw = b'{"interval":"1m","candles":[' + b",".join([*map(orjson.dumps, rows), overflow]) + b"]}"
    await bus.publish(topics.MARKET_CANDLES, msgspec.Raw(raw))
    await eventually(lambda: len(got) == 1, what="the batch")
    assert [c.symbol for c in got[0].data.candles] == ["BTCUSDT", "SOLUSDT"]
    assert got[0].data.candles[0] == Candle("BTCUSDT", "1m", 1_760_130_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0)
    assert counted("bus_rejected_rows_total", topic="market.candles") == rejected_before + 5
    assert await bus.dead_letters(topics.MARKET_CANDLES) == []  # a batch with good rows is not a dead letter


async def test_first_time_is_true_once_per_key_until_forgotten(bus: EventBus) -> None:
    assert [await bus.first_time("push:alerts.volume:1-0", 60_000) for _ in range(3)] == [True, False, False]
    assert await bus.first_time("push:alerts.volume:2-0", 60_000) is True
    await bus.forget_key("push:alerts.volume:1-0")
    assert await bus.first_time("push:alerts.volume:1-0", 60_000) is True
