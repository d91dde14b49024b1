"""What the Redis Streams bus adds to the contract: the stream layout, claims from foreign consumers, trimming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from marketpulse.bus import Message
from marketpulse.bus.redis_streams import RedisStreamsBus
from support.topics import T
from support.waiting import eventually

pytestmark = pytest.mark.redis
# redis-py declares replies as a union of every protocol's shapes; this client speaks RESP2 and returns bytes.
RawRedis = Any


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[RawRedis]:
    client = redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def bus(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStreamsBus]:
    impl = RedisStreamsBus(redis_url, stream_prefix=redis_prefix, claim_idle_ms=150, block_ms=50, max_deliveries=2)
    yield impl
    await impl.close()


async def until(condition: Callable[[], Awaitable[object]]) -> None:
    """Poll Redis until `condition` holds (the state lives in Redis: there is no event to wait on)."""
    await eventually(condition, what="the Redis state", every_s=0.005)


async def wait_for(messages: list[Message], count: int) -> None:
    async def arrived() -> bool:
        return len(messages) >= count

    await until(arrived)


async def nothing_pending(raw: RawRedis, stream: str, group: str) -> None:
    async def empty() -> bool:
        return not (await raw.xpending(stream, group))["pending"]

    await until(empty)


async def test_publish_is_one_field_of_json_in_a_prefixed_stream(
    bus: RedisStreamsBus, raw: RawRedis, redis_prefix: str
) -> None:
    msg_id = await bus.publish(T("market.tickers"), {"time": 1, "rows": [{"symbol": "BTCUSDT"}]})
    entries = await raw.xrange(f"{redis_prefix}market.tickers")
    assert [(e[0].decode(), e[1]) for e in entries] == [
        (msg_id, {b"d": orjson.dumps({"time": 1, "rows": [{"symbol": "BTCUSDT"}]})})
    ]


async def test_entries_are_acked_after_handling(bus: RedisStreamsBus, raw: RawRedis, redis_prefix: str) -> None:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    await bus.subscribe(T("t"), "g", handle)
    for n in range(5):
        await bus.publish(T("t"), {"n": n})
    await wait_for(seen, 5)
    await nothing_pending(raw, f"{redis_prefix}t", "g")


async def test_entries_read_but_never_acked_by_a_dead_process_are_claimed(
    bus: RedisStreamsBus, raw: RawRedis, redis_prefix: str
) -> None:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    await raw.xgroup_create(f"{redis_prefix}jobs", "workers", id="$", mkstream=True)
    first = await bus.publish(T("jobs"), {"job": 1})
    second = await bus.publish(T("jobs"), {"job": 2})
    # Another process reads both entries for consumer "ghost", then dies without acking.
    await raw.xreadgroup("workers", "ghost", {f"{redis_prefix}jobs": ">"}, count=10)
    await bus.subscribe(T("jobs"), "workers", handle, consumer="alive")
    await wait_for(seen, 2)
    assert [(m.id, m.data, m.deliveries) for m in seen] == [(first, {"job": 1}, 2), (second, {"job": 2}, 2)]
    await nothing_pending(raw, f"{redis_prefix}jobs", "workers")


async def test_a_takeover_consumer_handles_a_dead_holders_pending_entries_first_in_order(
    redis_url: str, raw: RawRedis, redis_prefix: str
) -> None:
    """A lease holder's successor (`takeover=True`) must not wait claim_idle_ms for what the dead holder read, or it
    would handle newer messages first (a paper deployment would skip the older minutes)."""
    slow_claims = RedisStreamsBus(redis_url, stream_prefix=redis_prefix, claim_idle_ms=600_000, block_ms=50)
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    try:
        await raw.xgroup_create(f"{redis_prefix}minutes", "leader", id="$", mkstream=True)
        held = [await slow_claims.publish(T("minutes"), {"minute": m}) for m in (1, 2)]
        await raw.xreadgroup("leader", "dead-holder", {f"{redis_prefix}minutes": ">"}, count=10)  # read, never acked
        newer = await slow_claims.publish(T("minutes"), {"minute": 3})
        await slow_claims.subscribe(T("minutes"), "leader", handle, consumer="successor", takeover=True)
        await wait_for(seen, 3)
        assert [(m.id, m.data["minute"]) for m in seen] == [(held[0], 1), (held[1], 2), (newer, 3)]
        await nothing_pending(raw, f"{redis_prefix}minutes", "leader")
    finally:
        await slow_claims.close()


async def test_payload_that_is_not_json_is_dead_lettered_not_looped(
    bus: RedisStreamsBus, raw: RawRedis, redis_prefix: str
) -> None:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    await bus.subscribe(T("t"), "g", handle)
    bad = (await raw.xadd(f"{redis_prefix}t", {b"d": b"{not json"})).decode()
    await bus.publish(T("t"), {"ok": True})
    await wait_for(seen, 1)
    assert [m.data for m in seen] == [{"ok": True}]
    await until(lambda: raw.exists(f"{redis_prefix}dead-letter:t"))
    [(_, fields)] = await raw.xrange(f"{redis_prefix}dead-letter:t")
    assert fields[b"d"] == b"{not json"
    meta = orjson.loads(fields[b"meta"])
    assert meta["reason"].startswith("not_json: ")
    assert {**meta, "reason": "…"} == {"id": bad, "group": "g", "deliveries": 1, "reason": "…"}


async def test_stream_is_trimmed_to_about_maxlen(redis_url: str, raw: RawRedis, redis_prefix: str) -> None:
    bus = RedisStreamsBus(redis_url, stream_prefix=redis_prefix, maxlen=100)
    try:
        await bus.publish_many(T("t"), [{"n": n} for n in range(1_000)])
    finally:
        await bus.close()
    # Approximate trimming removes whole radix-tree nodes (100 entries by default), so "about" 100, never 1,000.
    assert 100 <= await raw.xlen(f"{redis_prefix}t") < 300


async def test_publish_many_keeps_order(bus: RedisStreamsBus, raw: RawRedis, redis_prefix: str) -> None:
    ids = await bus.publish_many(T("t"), [{"n": n} for n in range(3)])
    entries = await raw.xrange(f"{redis_prefix}t")
    assert [e[0].decode() for e in entries] == ids
    assert [orjson.loads(e[1][b"d"])["n"] for e in entries] == [0, 1, 2]


async def test_consumer_survives_the_stream_being_deleted(
    bus: RedisStreamsBus, raw: RawRedis, redis_prefix: str
) -> None:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    await bus.subscribe(T("t"), "g", handle)
    await raw.delete(f"{redis_prefix}t")  # e.g. an operator's FLUSHDB: the group goes with the stream
    await until(lambda: raw.exists(f"{redis_prefix}t"))  # the consumer recreates stream and group on NOGROUP
    await bus.publish(T("t"), {"after": True})
    await wait_for(seen, 1)
    assert seen[0].data == {"after": True}


async def test_ping_is_false_when_redis_is_unreachable() -> None:
    bus = RedisStreamsBus("redis://127.0.0.1:1/0")
    try:
        assert await bus.ping() is False
    finally:
        await bus.close()


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="claim_idle_ms"):
        RedisStreamsBus("redis://localhost", claim_idle_ms=0)  # refused before connecting


async def test_closed_consumer_leaves_its_group_unless_it_holds_pending_entries(
    bus: RedisStreamsBus, raw: RawRedis, redis_prefix: str
) -> None:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    async def refuse(message: Message) -> None:
        seen.append(message)
        raise RuntimeError("not now")

    tidy = await bus.subscribe(T("t"), "g", handle, consumer="tidy")
    await bus.publish(T("t"), {"n": 1})
    await wait_for(seen, 1)
    await tidy.close()
    assert [c["name"] for c in await raw.xinfo_consumers(f"{redis_prefix}t", "g")] == []
    holding = await bus.subscribe(T("t"), "g", refuse, consumer="holding")
    await bus.publish(T("t"), {"n": 2})
    await wait_for(seen, 2)
    await holding.close()
    consumers = await raw.xinfo_consumers(f"{redis_prefix}t", "g")
    assert [(c["name"], c["pending"]) for c in consumers] == [(b"holding", 1)]


async def test_first_time_holds_across_processes(redis_url: str, redis_prefix: str) -> None:
    # Two API processes handling the same (claimed) message: exactly one of them gets to push it.
    buses = [RedisStreamsBus(redis_url, stream_prefix=redis_prefix) for _ in range(2)]
    try:
        answers = await asyncio.gather(*(b.first_time("push:alerts.volume:7-0", 60_000) for b in buses * 5))
    finally:
        for b in buses:
            await b.close()
    assert sorted(answers) == [False] * 9 + [True]


async def groups_of(raw: RawRedis, stream: str) -> set[str]:
    return {g["name"].decode() for g in await raw.xinfo_groups(stream)}


async def test_a_crashed_processs_ephemeral_group_is_reaped_by_the_next_process(
    redis_url: str, raw: RawRedis, redis_prefix: str
) -> None:
    """Groups of processes that died (no consumer polled for reap_idle_ms) go; live and durable groups stay."""
    await raw.delete(f"{redis_prefix}t", f"{redis_prefix}ephemeral-groups:t")
    reap_ms = 300

    def process() -> RedisStreamsBus:
        return RedisStreamsBus(redis_url, stream_prefix=redis_prefix, block_ms=20, reap_idle_ms=reap_ms)

    crashed, alive, durable, newcomer = process(), process(), process(), process()
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    try:
        dead_sub = await crashed.subscribe(T("t"), "api-state-crashed", handle, ephemeral=True)
        await alive.subscribe(T("t"), "api-state-alive", handle, ephemeral=True)
        durable_sub = await durable.subscribe(T("t"), "market-recorder", handle)
        await crashed.publish(T("t"), {"n": 1})
        await wait_for(seen, 3)  # every group has a consumer that has read
        dead_sub.abort()  # SIGKILL: nothing deletes the group
        durable_sub.abort()  # a stopped worker: its durable group must wait for it, however long
        assert await newcomer.reap_ephemeral_groups(T("t")) == []  # nobody has been silent long enough yet
        await asyncio.sleep(reap_ms * 1.5 / 1000)  # the alive consumer keeps polling meanwhile
        await newcomer.subscribe(T("t"), "api-state-newcomer", handle, ephemeral=True)  # reaps on the way in
        assert await groups_of(raw, f"{redis_prefix}t") == {"api-state-alive", "market-recorder", "api-state-newcomer"}
        registered = {k.decode() for k in await raw.hkeys(f"{redis_prefix}ephemeral-groups:t")}
        assert registered == {"api-state-alive", "api-state-newcomer"}
    finally:
        for b in (crashed, alive, durable, newcomer):
            await b.close()
    assert await groups_of(raw, f"{redis_prefix}t") == {"market-recorder"}  # closed ephemeral groups delete themselves
