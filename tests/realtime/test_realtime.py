"""Socket.IO: real clients against uvicorn; events come from the runtime's bus; Redis fans out across servers."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import socketio
from prometheus_client import REGISTRY

from api.serving import API_KEY, eventually, serving
from marketpulse.api.app import create_app
from marketpulse.bus import EventBus, Message, topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.bus.redis_streams import RedisStreamsBus
from marketpulse.bus.topics import PaperFill, RiskHalt
from marketpulse.clock import FakeClock
from marketpulse.detection.models import VolumeAlert
from marketpulse.marketdata.open_interest import OpenInterestCache
from marketpulse.realtime.bridge import RealtimeBridge
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.realtime.server import socketio_channel
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import sign_in_user, token_on_plan
from support.redis_ns import new_deployment, unlink_namespace

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
        self.fills: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.halts: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.tier: dict[str, Any] = {}
        self.client.on("tier", self.tier.update)
        self.client.on("market", self.market.put)
        self.client.on("volume-alert", self.alerts.put)
        self.client.on("paper-fill", self.fills.put)
        self.client.on("risk-halt", self.halts.put)

    async def next_market(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.market.get(), 5)

    async def next_alert(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.alerts.get(), 5)


@asynccontextmanager
async def listening(url: str, token: str | None = None) -> AsyncIterator[Listener]:
    """A client; with `token` (an elite user's, from `token_on_plan`) it gets every market patch and each alert at
    once, as these tests expect; anonymous, it would get the free plan's batches (tests/realtime/test_tiers.py)."""
    listener = Listener()
    await listener.client.connect(url, transports=["websocket"], auth={"token": token} if token else None)
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

        async with listening(url, await token_on_plan(sqlite_runtime)) as listener:
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


class SlowSio(RecordingSio):
    """A fan-out that takes as long as the test says: each emit waits for `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started = 0

    async def emit(self, event: str, data: Any, **kwargs: Any) -> None:
        self.started += 1
        await self.release.wait()
        self.release.clear()
        await super().emit(event, data, **kwargs)


async def test_a_slow_fan_out_does_not_hold_back_the_next_debounce_and_keeps_patches_in_order(
    clock: FakeClock,
) -> None:
    bus, sio, feed = MemoryBus(), SlowSio(), MarketFeed()
    bridge = RealtimeBridge(bus=bus, sio=sio, feed=feed,  # type: ignore[arg-type]
                            open_interest=OpenInterestCache(clock, 360, 1800), clock=clock,
                            sessions=None, debounce_ms=1)  # type: ignore[arg-type]
    await bridge.start()
    try:
        await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("BTCUSDT", 1.0)]})
        await eventually(lambda: _async(sio.started == 1))  # the first fan-out is under way, and stuck
        await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("BTCUSDT", 2.0)]})
        # the next debounce ran although the fan-out has not finished: its rows wait for the emitter
        await eventually(lambda: _async(bridge.pending_rows() == 1 and bridge._flush_task is not None
                                        and bridge._flush_task.done()))
        assert sio.started == 1  # one emitter at a time
        sio.release.set()
        await eventually(lambda: _async(sio.started == 2))  # served right after the first, without a new change
        sio.release.set()
        await eventually(lambda: _async(len(sio.emitted) == 2))
        assert [e[1]["rows"][0]["price"] for e in sio.emitted] == [1.0, 2.0]
    finally:
        await bridge.stop()


# --- several API servers sharing Redis ------------------------------------------------------------------------


def redis_settings(tmp_path: Path, db: Path, redis_url: str, deployment: str) -> Settings:
    """An API server of `deployment` (the test's own: its Socket.IO channel is named after it)."""
    return Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", redis_url=redis_url,
                    deployment=deployment, ingest_api_key=API_KEY, market_debounce_ms=0, data_dir=tmp_path)


@pytest.fixture
def shared_db(sqlite_template: Path, tmp_path: Path) -> Path:
    """One SQLite database for the servers of a test (PostgreSQL's part is covered by the API tests)."""
    db = tmp_path / "shared.db"
    shutil.copy(sqlite_template, db)
    return db


@pytest.mark.redis
async def test_an_emit_on_one_server_reaches_clients_of_another_through_redis(
    shared_db: Path, tmp_path: Path, redis_url: str, redis_deployment: str, clock: FakeClock
) -> None:
    """Two API servers with their own in-process buses: what one emits, the other's clients get via Redis."""
    buses = [MemoryBus(), MemoryBus()]
    async with AsyncExitStack() as stack:
        urls, runtimes = [], []
        for bus in buses:
            rt = Runtime.open(redis_settings(tmp_path, shared_db, redis_url, redis_deployment), clock=clock, bus=bus)
            stack.push_async_callback(rt.close)
            runtimes.append(rt)
            urls.append(await stack.enter_async_context(serving(create_app(rt))))
        token = await token_on_plan(runtimes[0])  # one database: both servers know the user
        first = await stack.enter_async_context(listening(urls[0], token))
        second = await stack.enter_async_context(listening(urls[1], token))

        await buses[0].publish(topics.ALERTS_VOLUME, ALERT)  # only server 0 sees this message
        assert await first.next_alert() == ALERT
        assert await second.next_alert() == ALERT  # …and server 1's client still gets it

        await buses[1].publish(topics.MARKET_TICKERS, {"time": T0, "rows": [row("XRPUSDT", 0.5)]})
        for listener in (first, second):
            update = await _next_update(listener)
            assert update["rows"][0]["symbol"] == "XRPUSDT"


@pytest.mark.redis
async def test_with_a_shared_redis_bus_each_client_gets_each_alert_once(
    shared_db: Path, tmp_path: Path, redis_url: str, redis_deployment: str, redis_prefix: str, clock: FakeClock
) -> None:
    """Every server sees every message (state), but only one emits it; Redis delivers it to all clients once."""
    async with AsyncExitStack() as stack:
        urls, buses, runtimes = [], [], []
        for _ in range(2):
            bus: EventBus = RedisStreamsBus(redis_url, stream_prefix=redis_prefix, block_ms=50)
            rt = Runtime.open(redis_settings(tmp_path, shared_db, redis_url, redis_deployment), clock=clock, bus=bus)
            stack.push_async_callback(rt.close)
            buses.append(bus)
            runtimes.append(rt)
            urls.append(await stack.enter_async_context(serving(create_app(rt))))
        token = await token_on_plan(runtimes[0])
        listeners = [await stack.enter_async_context(listening(u, token)) for u in urls]
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


# --- events for one owner ---------------------------------------------------------------------------------------


def fill(owner: str, fill_id: str) -> PaperFill:
    return PaperFill(owner_id=owner, order_id=f"o-{fill_id}", fill_id=fill_id, symbol="BTCUSDT", side="buy",
                     quantity=0.5, price=60_000.0, fee=15.0, realized_pnl=0.0, time=T0, account_id=owner)


async def test_paper_fills_and_risk_halts_reach_their_owner_only(sqlite_runtime: Runtime) -> None:
    bus = sqlite_runtime.bus
    owner = await sign_in_user(sqlite_runtime)
    halt = RiskHalt(owner_id=owner.user_id, reason="daily_loss_limit", equity=9_400.0, day_start_equity=10_000.0,
                    limit_pct=0.05, halted_until=T0 + 86_400_000, time=T0, account_id=owner.user_id)
    async with serving(create_app(sqlite_runtime)) as url, listening(url, owner.access_token) as listener, \
            listening(url) as anonymous:
        await bus.publish(topics.PAPER_FILLS, fill("someone-else", "f0"))  # another owner's: not for this client
        await bus.publish(topics.PAPER_FILLS, fill(owner.user_id, "f1"))
        await bus.publish(topics.RISK_HALTS, halt)
        got = await asyncio.wait_for(listener.fills.get(), 5)
        assert got == msgspec.to_builtins(fill(owner.user_id, "f1"))  # the first one it gets is its own
        assert await asyncio.wait_for(listener.halts.get(), 5) == msgspec.to_builtins(halt)
        assert anonymous.fills.empty() and anonymous.halts.empty()  # an anonymous connection is nobody's


# --- each event pushed once -----------------------------------------------------------------------------------


def recording_bridge(bus: EventBus, sio: Any, clock: FakeClock) -> RealtimeBridge:
    return RealtimeBridge(bus=bus, sio=sio, feed=MarketFeed(), open_interest=OpenInterestCache(clock, 360, 1800),
                          clock=clock, sessions=None, debounce_ms=0)  # type: ignore[arg-type]


def dropped(event: str) -> float:
    return REGISTRY.get_sample_value("realtime_duplicates_dropped_total", {"event": event}) or 0.0


async def test_a_redelivered_alert_is_pushed_once(clock: FakeClock) -> None:
    sio = RecordingSio()
    bridge = recording_bridge(MemoryBus(), sio, clock)
    message = Message("7-0", topics.ALERTS_VOLUME.name, msgspec.convert(ALERT, VolumeAlert), 1)
    before = dropped("volume-alert")
    await bridge._on_volume_alert(message)
    await bridge._on_volume_alert(replace(message, deliveries=2))  # the bus delivers it again (at least once)
    assert [(event, data) for event, data, _ in sio.emitted] == [("volume-alert", ALERT)]
    assert dropped("volume-alert") == before + 1


class FailingOnceSio(RecordingSio):
    async def emit(self, event: str, data: Any, **kwargs: Any) -> None:
        if not self.emitted and not getattr(self, "failed", False):
            self.failed = True
            raise ConnectionError("redis manager unreachable")
        await super().emit(event, data, **kwargs)


async def test_an_alert_whose_push_failed_is_pushed_by_the_redelivery(clock: FakeClock) -> None:
    bus, sio = MemoryBus(redelivery_delay_s=0.01), FailingOnceSio()
    bridge = recording_bridge(bus, sio, clock)
    await bridge.start()
    try:
        await bus.publish(topics.ALERTS_VOLUME, ALERT)
        await eventually(lambda: _async(len(sio.emitted) == 1))
    finally:
        await bridge.stop()
    assert sio.emitted[0][:2] == ("volume-alert", ALERT)


class StalledSio(RecordingSio):
    """An API process that stalls in its first alert emit (a slow network, a GC pause) until released."""

    def __init__(self, release: asyncio.Event) -> None:
        super().__init__()
        self.release, self.stalled = release, asyncio.Event()

    async def emit(self, event: str, data: Any, **kwargs: Any) -> None:
        if event == "volume-alert" and not self.stalled.is_set():
            self.stalled.set()
            await self.release.wait()
        await super().emit(event, data, **kwargs)


@pytest.mark.redis
async def test_an_alert_claimed_from_a_slow_api_process_is_not_pushed_twice(
    redis_url: str, redis_prefix: str, clock: FakeClock
) -> None:
    """Two API processes share the broadcast group. The one that reads the alert stalls past the claim time; the
    other claims the message (delivery 2) and must drop it, since the first one is pushing it."""
    release = asyncio.Event()
    buses = [RedisStreamsBus(redis_url, stream_prefix=redis_prefix, claim_idle_ms=200, block_ms=20) for _ in range(2)]
    sios = [StalledSio(release), StalledSio(release)]
    bridges = [recording_bridge(bus, sio, clock) for bus, sio in zip(buses, sios, strict=True)]
    before = dropped("volume-alert")
    try:
        for bridge in bridges:
            await bridge.start()
        await buses[0].publish(topics.ALERTS_VOLUME, ALERT)
        await eventually(lambda: _async(dropped("volume-alert") == before + 1))  # the claim came, and was dropped
        release.set()
        await eventually(lambda: _async(sum(len(s.emitted) for s in sios) == 1))
    finally:
        release.set()
        for bridge in bridges:
            await bridge.stop()
        for bus in buses:
            await bus.close()
    assert [e[:2] for s in sios for e in s.emitted] == [("volume-alert", ALERT)]


# --- deployments sharing a Redis server -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "channel"),
    [
        ({"bus_url": "redis://127.0.0.1:6379/3"}, "marketpulse-socketio:127.0.0.1:6379/3"),
        ({"bus_url": "redis://:secret@cache.internal/4"}, "marketpulse-socketio:cache.internal:6379/4"),
        ({"bus_url": "memory://", "redis_url": "redis://10.0.0.5:6380"}, "marketpulse-socketio:10.0.0.5:6380/0"),
        ({"bus_url": "redis://127.0.0.1:6379/3", "deployment": "eu-prod"}, "marketpulse-socketio:eu-prod"),
        ({"bus_url": "redis://127.0.0.1:6379/3", "deployment": "eu-prod", "socketio_channel": "mine"}, "mine"),
    ],
)
def test_the_socketio_channel_is_the_deployments_own(settings: dict[str, Any], channel: str) -> None:
    assert socketio_channel(Settings(**settings)) == channel


@pytest.mark.redis
async def test_two_deployments_on_one_redis_database_do_not_hear_each_other(
    tmp_path: Path, sqlite_template: Path, redis_url: str, redis_deployment: str, clock: FakeClock
) -> None:
    """Deployments A and B share a Redis server and even its database, told apart only by PULSE_DEPLOYMENT: their
    bus streams (`pulse:{deployment}:…`) and Socket.IO channels are their own, so neither pushes the other's alerts
    to its users nor consumes the other's messages."""
    names = (redis_deployment, new_deployment())  # the first is cleaned up by the `redis_url` fixture
    async with AsyncExitStack() as stack:
        stack.push_async_callback(unlink_namespace, redis_url, names[1])
        buses, listeners = [], []
        for name in names:
            db = tmp_path / f"{name}.db"
            shutil.copy(sqlite_template, db)
            settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url=redis_url, deployment=name,
                                ingest_api_key=API_KEY, market_debounce_ms=0, data_dir=tmp_path)
            rt = Runtime.open(settings, clock=clock)  # the bus as the app builds it, from the settings
            stack.push_async_callback(rt.close)
            buses.append(rt.bus)
            listeners.append(await stack.enter_async_context(listening(
                await stack.enter_async_context(serving(create_app(rt))), await token_on_plan(rt)
            )))
        for i, bus in enumerate(buses):
            await bus.publish(topics.ALERTS_VOLUME, {**ALERT, "id": f"from-{i}"})
        for i, listener in enumerate(listeners):
            # Each deployment's alert came through its own channel; the other's would have arrived in between.
            assert (await listener.next_alert())["id"] == f"from-{i}"
            await buses[i].publish(topics.ALERTS_VOLUME, {**ALERT, "id": f"end-{i}"})
            assert (await listener.next_alert())["id"] == f"end-{i}"


async def test_liquidations_reach_every_connection_anonymous_too_and_once(sqlite_runtime: Runtime) -> None:
    from marketpulse.bus.topics import LiquidationsEvent
    from marketpulse.marketdata.models import Liquidation

    bus = sqlite_runtime.bus
    batch = LiquidationsEvent([Liquidation("BTCUSDT", "long", 110_000.0, 0.5, 55_000.0, T0 + 1_000)])
    wire = {"liquidations": [{"symbol": "BTCUSDT", "side": "long", "price": 110_000.0, "quantity": 0.5,
                              "usd": 55_000.0, "time": T0 + 1_000}]}
    async with serving(create_app(sqlite_runtime)) as url, listening(url) as anonymous, \
            listening(url, await token_on_plan(sqlite_runtime)) as elite:
        got: dict[str, asyncio.Queue[Any]] = {"anonymous": asyncio.Queue(), "elite": asyncio.Queue()}
        anonymous.client.on("liquidations", got["anonymous"].put)
        elite.client.on("liquidations", got["elite"].put)
        await bus.publish(topics.MARKET_LIQUIDATIONS, batch)
        assert await asyncio.wait_for(got["anonymous"].get(), 5) == wire
        assert await asyncio.wait_for(got["elite"].get(), 5) == wire
    sio = RecordingSio()
    bridge = recording_bridge(MemoryBus(), sio, FakeClock(T0))
    message = Message("9-0", topics.MARKET_LIQUIDATIONS.name, batch, 1)
    await bridge._on_liquidations(message)
    await bridge._on_liquidations(replace(message, deliveries=2))
    assert [(event, data) for event, data, _ in sio.emitted] == [("liquidations", wire)]
