"""Event bus throughput: messages per second from publish to handled (and, for Redis, acked), in one run.

    .venv/bin/python -m bench.bus_throughput [--redis redis://127.0.0.1:6379/14] [--repeats 3]

Two payloads: a small message (an alert-sized dict, ~100 bytes of JSON) and a realistic `market.tickers`
batch (600 MarketRows, ~110 KB of JSON, what the ingest role publishes every second), published and decoded as
its typed topic is (`TickersEvent`, rows checked one by one for finite numbers).
Baselines in the same run: a bare asyncio.Queue (the floor for the in-process bus) and bare redis-py
XADD + XREADGROUP + XACK without the bus (the floor for Redis Streams).
One publisher and one consumer; the consumer reads up to `read_count` (100) entries per XREADGROUP and acks them
in one XACK. "pipelined" rows publish with `publish_many` (100 XADDs per round trip) instead of one await each.
Uses the Redis database given (default 14) and deletes the streams it made.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson
import redis.asyncio as redis

from marketpulse.bus import EventBus, Message
from marketpulse.bus.memory import MemoryBus
from marketpulse.bus.redis_streams import RedisStreamsBus
from marketpulse.bus.topics import BatchTopic, TickersEvent, Topic
from marketpulse.marketdata.models import MarketRow

SMALL: dict[str, Any] = {
    "symbol": "BTCUSDT", "alertType": "SPIKE", "volumeRatio": 3.42, "timestamp": 1_760_126_400_000,
}  # fmt: skip
BATCH_SIZE = 100
SMALL_TOPIC: Topic[dict[str, Any]] = Topic("bench", dict[str, Any])
TICKERS_TOPIC = BatchTopic("bench", TickersEvent, rows="rows", row=MarketRow)  # market.tickers, on a scratch stream


def ticker_batch(rows: int = 600) -> dict[str, Any]:
    return {
        "time": 1_760_126_400_000,
        "rows": [
            {
                "symbol": f"SYM{i}USDT",
                "time": 1_760_126_400_000 + i,
                "price": 12345.678 + i,
                "change_pct_24h": -3.21,
                "quote_volume_24h": 1.234e9 + i,
                "funding_rate": 0.0001,
                "open_interest_usd": 5.67e8 + i,
                "price_precision": 2,
            }  # fmt: skip
            for i in range(rows)
        ],
    }


async def timed(run: Callable[[], Awaitable[None]], repeats: int) -> float:
    """Median seconds of `repeats` runs after one warm-up run."""
    await run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def through_bus(
    make_bus: Callable[[], EventBus], topic: Topic[Any], payload: Any, count: int, *, pipelined: bool = False
) -> None:
    bus = make_bus()
    done = asyncio.Event()
    handled = 0

    async def handle(_: Message) -> None:
        nonlocal handled
        handled += 1
        if handled == count:
            done.set()

    await bus.subscribe(topic, "bench", handle)
    if pipelined and isinstance(bus, RedisStreamsBus):
        for start in range(0, count, BATCH_SIZE):
            await bus.publish_many(topic, [payload] * min(BATCH_SIZE, count - start))
    else:
        for _ in range(count):
            await bus.publish(topic, payload)
    await done.wait()
    await bus.close()


async def bare_queue(payload: dict[str, Any], count: int) -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def consume() -> None:
        for _ in range(count):
            orjson.loads(await queue.get())

    consumer = asyncio.create_task(consume())
    for _ in range(count):
        queue.put_nowait(orjson.dumps(payload))  # like MemoryBus.publish: serialize once, never block
    await consumer


async def bare_redis(url: str, payload: dict[str, Any], count: int) -> None:
    client = redis.from_url(url)
    await client.delete("bench:bare")
    await client.xgroup_create("bench:bare", "g", id="$", mkstream=True)

    async def consume() -> None:
        got = 0
        while got < count:
            reply: Any = await client.xreadgroup("g", "c", {"bench:bare": ">"}, count=BATCH_SIZE, block=1000)
            for _stream, entries in reply or []:
                for _id, fields in entries:
                    orjson.loads(fields[b"d"])
                await client.xack("bench:bare", "g", *[entry_id for entry_id, _ in entries])
                got += len(entries)

    consumer = asyncio.create_task(consume())
    for start in range(0, count, BATCH_SIZE):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(min(BATCH_SIZE, count - start)):
                pipe.xadd("bench:bare", {b"d": orjson.dumps(payload)}, maxlen=100_000, approximate=True)
            await pipe.execute()
    await consumer
    await client.delete("bench:bare")
    await client.aclose()


async def main(redis_url: str, repeats: int) -> None:
    ticker = ticker_batch()
    typed = msgspec.convert(ticker, TickersEvent)
    stream_prefix = "bench:"

    def memory() -> EventBus:
        return MemoryBus()

    def streams() -> EventBus:
        return RedisStreamsBus(redis_url, stream_prefix=stream_prefix, block_ms=100)

    cases: list[tuple[str, str, int, Callable[[], Awaitable[None]]]] = [
        ("baseline: bare asyncio.Queue + orjson", "small", 50_000, lambda: bare_queue(SMALL, 50_000)),
        ("memory bus", "small", 50_000, lambda: through_bus(memory, SMALL_TOPIC, SMALL, 50_000)),
        ("baseline: bare asyncio.Queue + orjson", "600-row tickers", 1_000, lambda: bare_queue(ticker, 1_000)),
        ("memory bus", "600-row tickers", 1_000, lambda: through_bus(memory, TICKERS_TOPIC, typed, 1_000)),
        ("baseline: bare redis-py XADD (pipelined) / XREADGROUP / XACK", "small", 20_000,
         lambda: bare_redis(redis_url, SMALL, 20_000)),
        ("Redis Streams bus, publish awaited one by one", "small", 10_000, lambda: through_bus(streams, SMALL_TOPIC, SMALL, 10_000)),  # noqa: E501
        ("Redis Streams bus, publish_many (100 per round trip)", "small", 20_000,
         lambda: through_bus(streams, SMALL_TOPIC, SMALL, 20_000, pipelined=True)),
        ("baseline: bare redis-py XADD (pipelined) / XREADGROUP / XACK", "600-row tickers", 500,
         lambda: bare_redis(redis_url, ticker, 500)),
        ("Redis Streams bus, publish awaited one by one", "600-row tickers", 500,
         lambda: through_bus(streams, TICKERS_TOPIC, typed, 500)),
    ]  # fmt: skip
    client = redis.from_url(redis_url)
    print(f"payloads: small {len(orjson.dumps(SMALL))} B, tickers {len(orjson.dumps(ticker)):,} B of JSON")
    print(f"median of {repeats} runs after a warm-up; one publisher, one consumer, publish → handled (and acked)\n")
    print("| path | payload | messages | median s | messages/s |")
    print("|---|---|---:|---:|---:|")
    for name, payload_name, count, run in cases:
        seconds = await timed(run, repeats)
        print(f"| {name} | {payload_name} | {count:,} | {seconds:.3f} | {count / seconds:,.0f} |")
        await client.delete(f"{stream_prefix}bench")
    await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="Redis URL (a scratch database)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.redis, args.repeats))
