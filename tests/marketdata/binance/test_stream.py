"""The reconnecting /market stream against the local fake Binance: routing, backoff, rotation, pings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from fakes.binance_server import FakeBinance, ticker_payload
from marketpulse.clock import FakeClock
from marketpulse.marketdata.binance.backoff import Backoff
from marketpulse.marketdata.binance.frames import MARKET_STREAMS, TICKER_STREAM
from marketpulse.marketdata.binance.stream import MAX_AGE_MS, ReconnectingStream, market_stream_url

T0 = 1_760_126_400_000
TICKER = ticker_payload("BTCUSDT", T0, last=2.0, open_=1.0, high=2.0, low=1.0, volume=10.0, quote_volume=15.0)


class RecordingSleep:
    """Stands in for asyncio.sleep: records each backoff delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        yield server


class Harness:
    """A ReconnectingStream on the fake; collects messages; treats frames with a "stream" key as usable."""

    def __init__(self, fake: FakeBinance, clock: FakeClock, idle_timeout_s: float = 60.0) -> None:
        self.sleep = RecordingSleep()
        self.messages: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.stream = ReconnectingStream(
            market_stream_url(fake.ws_url, MARKET_STREAMS), self._on_message, clock=clock, sleep=self.sleep,
            backoff=Backoff(rng=lambda: 0.0), idle_timeout_s=idle_timeout_s,
        )

    async def _on_message(self, raw: str | bytes) -> bool:
        await self.messages.put(raw)
        return '"stream"' in str(raw)

    async def next_message(self) -> str | bytes:
        return await asyncio.wait_for(self.messages.get(), 10)


@pytest.fixture
async def harness(fake: FakeBinance, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(fake, clock)
    task = asyncio.create_task(h.stream.run())
    yield h
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_connects_on_the_market_path_and_receives_ticker_frames(fake: FakeBinance, harness: Harness) -> None:
    await fake.wait_for_connections(1)
    (conn,) = fake.connections
    assert conn.category == "market" and conn.streams == frozenset(MARKET_STREAMS)
    assert await fake.push(TICKER_STREAM, [TICKER]) == 1
    assert json.loads(await harness.next_message()) == {"stream": TICKER_STREAM, "data": [TICKER]}


async def test_fake_mirrors_binance_an_unrouted_connection_gets_no_ticker_data(fake: FakeBinance) -> None:
    async with connect(f"{fake.ws_url}/stream?streams={TICKER_STREAM}/btcusdt@depth") as ws:
        await fake.wait_for_connections(1)
        assert await fake.push(TICKER_STREAM, [TICKER]) == 0  # silently nothing, no error
        await fake.push("btcusdt@depth", {"e": "depthUpdate", "s": "BTCUSDT"})  # public data still flows
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["stream"] == "btcusdt@depth"


async def test_refused_connects_back_off_exponentially_then_reset_after_a_healthy_connection(
    fake: FakeBinance, clock: FakeClock
) -> None:
    fake.refuse_next_connections(4)
    h = Harness(fake, clock)
    task = asyncio.create_task(h.stream.run())
    try:
        await fake.wait_for_connections(1)
        assert fake.refused == 4 and h.sleep.delays == [1, 2, 4, 8]
        await fake.push(TICKER_STREAM, [TICKER])
        await h.next_message()  # a usable frame: the connection was healthy, the backoff starts over

        await fake.drop_connections()
        await fake.wait_for_connections(1, connects=2)
        assert h.sleep.delays == [1, 2, 4, 8, 1]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_drops_without_usable_data_keep_growing_the_backoff(fake: FakeBinance, harness: Harness) -> None:
    for connects in (2, 3, 4):
        await fake.wait_for_connections(1, connects=connects - 1)
        await fake.drop_connections()
    await fake.wait_for_connections(1, connects=4)
    assert harness.sleep.delays == [1, 2, 4]


async def test_rotates_before_the_24h_limit_without_backoff(
    fake: FakeBinance, harness: Harness, clock: FakeClock
) -> None:
    await fake.wait_for_connections(1)
    await fake.push(TICKER_STREAM, [TICKER])
    await harness.next_message()  # the client is reading: its rotation deadline is set
    clock.advance(MAX_AGE_MS - 1)
    await fake.push(TICKER_STREAM, [TICKER])
    await harness.next_message()  # still the same connection one millisecond before the deadline
    assert fake.connects == 1
    clock.advance(1)
    await fake.wait_for_connections(1, connects=2)
    assert harness.sleep.delays == []  # a planned rotation reconnects at once
    assert MAX_AGE_MS < 24 * 3_600_000


async def test_pings_are_answered_while_frames_flow(fake: FakeBinance, harness: Harness) -> None:
    await fake.wait_for_connections(1)
    for _ in range(3):
        await fake.push(TICKER_STREAM, [TICKER])
    latencies = await fake.ping_clients()
    assert len(latencies) == 1
    for _ in range(3):
        await harness.next_message()


async def test_a_silent_connection_is_replaced(fake: FakeBinance, clock: FakeClock) -> None:
    h = Harness(fake, clock, idle_timeout_s=0.1)  # the fake sends nothing: a stalled route
    task = asyncio.create_task(h.stream.run())
    try:
        await fake.wait_for_connections(1, connects=2)
        assert h.sleep.delays[0] == 1  # an unhealthy connection: it backs off like a drop
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
