"""Socket.IO: real clients against uvicorn; events come from the runtime's bus; Redis fans out across servers."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from marketpulse.api.app import create_app
from marketpulse.bus import EventBus, topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.bus.redis_streams import RedisStreamsBus
from marketpulse.clock import FakeClock
from marketpulse.marketdata.open_interest import OpenInterestCache
from marketpulse.realtime.bridge import RealtimeBridge
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

from .serving import API_KEY, eventually, serving

T0 = 1_760_126_400_000
ALERT = {"symbol": "SOLUSDT", "asset": "SOL", "currentVolume": 12.7e6, "previousVolume": 3.1e6, "volumeRatio": 4.1,
         "price": 150.25, "fundingRate": 0.0001, "candleDirection": "bullish", "alertType": "SPIKE",
         "message": "SOLUSDT volume spike 4.10x", "timestamp": T0 + 300_000, "hourTimestamp": T0, "isUpdate": False,
         "id": None}


def row(symbol: str, price: float, **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol, "time": T0, "price": price, "change_pct_24h": 1.0, "quote_volume_24h": 1e9, **extra}


class Listener:
    """A socketio.AsyncClient that queues what it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.market: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.alerts: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.snapshot: dict[str, Any] = {}
        self.client.on("market", self.market.put)
        self.client.on("volume-alert", self.alerts.put)

    async def next_market(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.market.get(), 5)

    async def next_alert(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.alerts.get(), 5)


@asynccontextmanager
async def listening(url: str) -> AsyncIterator[Listener]:
    listener = Listener()
    await listener.client.connect(url, transports=["websocket"])
    # The snapshot is sent once the server has the client in its namespace; events before that could miss it.
    listener.snapshot = await listener.next_market()
    try:
        yield listener
    finally:
        await listener.client.disconnect()


async def test_client_gets_a_snapshot_then_only_changed_rows_and_alerts(sqlite_runtime: Runtime) -> None:
    bus = sqlite_runtime.bus
    app = create_app(sqlite_runtime)
    async with serving(app) as url:
        await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("BTCUSDT", 60_000.0)]})
        await eventually(lambda: _has(app, "BTCUSDT"))

        async with listening(url) as listener:
            snapshot = listener.snapshot
            assert snapshot["full"] is True
            assert [r["symbol"] for r in snapshot["rows"]] == ["BTCUSDT"]

            await bus.publish(topics.MARKET_TICKERS, {"time": T0 + 1000, "rows": [row("ETHUSDT", 2_400.0)]})
            delta = await listener.next_market()
            assert delta["full"] is False
            assert delta["rows"] == [{"symbol": "ETHUSDT", "time": T0, "price": 2_400.0, "changePct24h": 1.0,
                                      "quoteVolume24h": 1e9}]  # unknown fields are absent, not null

            await bus.publish(topics.MARKET_OPEN_INTEREST, {"asOf": T0, "data": {"ethusdt": 5e9}})
            assert (await listener.next_market())["rows"] == [{"symbol": "ETHUSDT", "openInterestUsd": 5e9}]

            await bus.publish(topics.ALERTS_VOLUME, ALERT)
            assert await listener.next_alert() == ALERT


async def _has(app: Any, symbol: str) -> bool:
    return app.other_asgi_app.state.market_feed.get(symbol) is not None


class RecordingSio:
    """Stands in for the Socket.IO server: records emits."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, Any, dict[str, Any]]] = []

    async def emit(self, event: str, data: Any, **kwargs: Any) -> None:
        self.emitted.append((event, data, kwargs))


async def test_market_updates_are_coalesced_per_symbol_until_the_debounce_fires(clock: FakeClock) -> None:
    bus, sio, feed = MemoryBus(), RecordingSio(), MarketFeed()
    bridge = RealtimeBridge(bus=bus, sio=sio, feed=feed,  # type: ignore[arg-type]
                            open_interest=OpenInterestCache(clock, 360, 1800), clock=clock,
                            sessions=None, debounce_ms=3_600_000)  # type: ignore[arg-type]
    await bridge.start()
    try:
        for price in (1.0, 2.0, 3.0):
            await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("BTCUSDT", price, funding_rate=0.01)]})
        await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("ETHUSDT", 9.0)]})
        await eventually(lambda: _async(feed.get("ETHUSDT") is not None and feed.get("BTCUSDT")["price"] == 3.0))
        await eventually(lambda: _async(bridge.pending_rows() == 2))
        assert sio.emitted == []  # nothing before the debounce
        await bridge.flush()
        [(event, payload, _)] = sio.emitted
        assert event == "market"
        assert {r["symbol"]: r["price"] for r in payload["rows"]} == {"BTCUSDT": 3.0, "ETHUSDT": 9.0}
        await bridge.flush()
        assert len(sio.emitted) == 1  # nothing changed since: nothing sent
    finally:
        await bridge.stop()


async def test_open_interest_goes_out_for_table_symbols_and_rides_along_with_a_new_row(
    sqlite_runtime: Runtime, clock: FakeClock
) -> None:
    bus, sio, feed = MemoryBus(), RecordingSio(), MarketFeed()
    cache = OpenInterestCache(clock, 360, 1800)
    bridge = RealtimeBridge(bus=bus, sio=sio, feed=feed, open_interest=cache, clock=clock,  # type: ignore[arg-type]
                            sessions=sqlite_runtime.sessions, debounce_ms=3_600_000)
    await bridge.start()
    try:
        await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("BTCUSDT", 1.0)]})
        await eventually(lambda: _async(feed.has("BTCUSDT")))
        await bridge.flush()
        await bus.publish(topics.MARKET_OPEN_INTEREST, {"asOf": T0, "data": {"BTCUSDT": 7.0, "NEWUSDT": 3.0}})
        await eventually(lambda: _async(cache.values().get("NEWUSDT") == 3.0 and bridge.pending_rows() == 1))
        await bridge.flush()
        assert sio.emitted[-1][1]["rows"] == [{"symbol": "BTCUSDT", "openInterestUsd": 7.0}]  # no row from OI alone

        await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("NEWUSDT", 2.0)]})
        await eventually(lambda: _async(bridge.pending_rows() == 1))
        await bridge.flush()
        [patch] = sio.emitted[-1][1]["rows"]
        assert patch["symbol"] == "NEWUSDT" and patch["openInterestUsd"] == 3.0
    finally:
        await bridge.stop()


async def _async(value: bool) -> bool:
    return value


# --- several API servers sharing Redis ------------------------------------------------------------------------


def redis_settings(tmp_path: Path, db: Path, redis_url: str, channel: str) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", redis_url=redis_url,
                    socketio_channel=channel, ingest_api_key=API_KEY, market_debounce_ms=0, data_dir=tmp_path)


@pytest.fixture
def shared_db(sqlite_template: Path, tmp_path: Path) -> Path:
    """One SQLite database for the servers of a test (PostgreSQL's part is covered by the API tests)."""
    db = tmp_path / "shared.db"
    shutil.copy(sqlite_template, db)
    return db


@pytest.mark.redis
async def test_an_emit_on_one_server_reaches_clients_of_another_through_redis(
    shared_db: Path, tmp_path: Path, redis_url: str, clock: FakeClock
) -> None:
    """Two API servers with their own in-process buses: what one emits, the other's clients get via Redis."""
    channel = f"test-{uuid.uuid4().hex}"
    buses = [MemoryBus(), MemoryBus()]
    async with AsyncExitStack() as stack:
        urls = []
        for bus in buses:
            rt = Runtime.open(redis_settings(tmp_path, shared_db, redis_url, channel), clock=clock, bus=bus)
            stack.push_async_callback(rt.close)
            urls.append(await stack.enter_async_context(serving(create_app(rt))))
        first = await stack.enter_async_context(listening(urls[0]))
        second = await stack.enter_async_context(listening(urls[1]))

        await buses[0].publish(topics.ALERTS_VOLUME, ALERT)  # only server 0 sees this message
        assert await first.next_alert() == ALERT
        assert await second.next_alert() == ALERT  # …and server 1's client still gets it

        await buses[1].publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("XRPUSDT", 0.5)]})
        for listener in (first, second):
            update = await _next_update(listener)
            assert update["rows"][0]["symbol"] == "XRPUSDT"


@pytest.mark.redis
async def test_with_a_shared_redis_bus_each_client_gets_each_alert_once(
    shared_db: Path, tmp_path: Path, redis_url: str, clock: FakeClock
) -> None:
    """Every server sees every message (state), but only one emits it; Redis delivers it to all clients once."""
    channel = f"test-{uuid.uuid4().hex}"
    async with AsyncExitStack() as stack:
        urls, buses = [], []
        for _ in range(2):
            bus: EventBus = RedisStreamsBus(redis_url, stream_prefix=f"{channel}:", block_ms=50)
            rt = Runtime.open(redis_settings(tmp_path, shared_db, redis_url, channel), clock=clock, bus=bus)
            stack.push_async_callback(rt.close)
            buses.append(bus)
            urls.append(await stack.enter_async_context(serving(create_app(rt))))
        listeners = [await stack.enter_async_context(listening(u)) for u in urls]
        alerts = [{**ALERT, "symbol": f"S{i}USDT", "id": str(i)} for i in range(6)]
        for alert in alerts:
            await buses[0].publish(topics.ALERTS_VOLUME, alert)
        sentinel = {**ALERT, "symbol": "ENDUSDT", "id": "end"}
        for listener in listeners:
            got = [await listener.next_alert() for _ in alerts]
            assert sorted(a["id"] for a in got) == [str(i) for i in range(6)]
        # A duplicate would have been emitted by the other server right after the original; once a later
        # alert has come through every server's path, nothing else may be queued.
        for _ in range(2):
            await buses[1].publish(topics.ALERTS_VOLUME, sentinel)
        for listener in listeners:
            assert (await listener.next_alert())["id"] == "end"
            assert (await listener.next_alert())["id"] == "end"
            assert listener.alerts.empty()

        # Each server's table is complete although only one of them broadcast each message.
        await buses[1].publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("ADAUSDT", 0.3)]})
        async with httpx.AsyncClient() as http:
            for url in urls:
                async def known(url: str = url) -> bool:
                    return (await http.get(f"{url}/api/v1/market/symbol/ADAUSDT")).status_code == 200

                await eventually(known)


async def _next_update(listener: Listener) -> dict[str, Any]:
    payload = await listener.next_market()
    assert payload["full"] is False
    return payload
