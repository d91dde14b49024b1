"""Live data per plan: tiers from the plan table, wall-clock batches and tables on the injected clock (every
boundary tested without sleeping), once across API processes, and connections following a plan change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import socketio

from api.serving import serving
from marketpulse.accounts.core import Role
from marketpulse.accounts.plans import PLANS, plan_named
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.marketdata.open_interest import OpenInterestCache
from marketpulse.realtime.bridge import RealtimeBridge
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.realtime.tiers import TIERS, next_boundary, tier_of
from marketpulse.runtime import Runtime
from support.accounts import user_on_plan
from support.waiting import eventually

MINUTE = 60_000
T0 = 1_760_126_400_000  # 2025-10-10 20:00:00.000 UTC, a boundary of every period
ALERT = {"symbol": "SOLUSDT", "asset": "SOL", "currentVolume": 12.7e6, "previousVolume": 3.1e6, "volumeRatio": 4.1,
         "price": 150.25, "fundingRate": 0.0001, "candleDirection": "bullish", "alertType": "SPIKE",
         "message": "SOLUSDT volume spike 4.10x", "timestamp": T0, "hourTimestamp": T0, "isUpdate": False, "id": "a1"}


def market(n: int) -> list[dict[str, Any]]:
    """n rows, S000USDT the largest by 24h quote volume, each with open interest."""
    return [{"symbol": f"S{i:03d}USDT", "time": T0, "price": 1.0 + i, "change_pct_24h": 0.5,
             "quote_volume_24h": 1e9 - i * 1e6, "open_interest_usd": 5e6 + i} for i in range(n)]


# --- the pure part ----------------------------------------------------------------------------------------------


def test_tiers_are_the_plan_tables_and_enterprise_shares_elites_room() -> None:
    assert [t.room for t in TIERS] == ["tier-free", "tier-pro", "tier-elite"]
    assert tier_of("enterprise").room == "tier-elite"
    assert tier_of("premium") is tier_of("elite")
    assert tier_of(None) is tier_of("free")  # anonymous: the free view
    for plan in PLANS:
        tier = tier_of(plan.name)
        assert tier.symbols == plan.symbols_in_table
        assert tier.open_interest == plan.open_interest_column
        assert tier.alert_batch_ms == plan.alert_batch_minutes * MINUTE
        assert tier.table_refresh_ms == plan.table_refresh_s * 1000


@pytest.mark.parametrize(("now", "period", "expected"), [
    ("20:14:59.999", 15, "20:15:00.000"),
    ("20:15:00.000", 15, "20:30:00.000"),
    ("20:59:59.999", 15, "21:00:00.000"),
    ("20:04:59.999", 5, "20:05:00.000"),
    ("20:05:00.001", 5, "20:10:00.000"),
])
def test_the_next_boundary_is_the_next_multiple_of_the_period_on_the_wall_clock(
        now: str, period: int, expected: str) -> None:
    assert next_boundary(at(now), period * MINUTE) == at(expected)


def at(hms: str) -> int:
    """20:14:59.999 on the test's day, epoch ms."""
    h, m, s = hms.split(":")
    return T0 + ((int(h) - 20) * 60 + int(m)) * MINUTE + round(float(s) * 1000)


def test_a_tier_sees_its_top_symbols_by_volume_and_its_columns() -> None:
    from marketpulse.marketdata.models import MarketRow
    from marketpulse.realtime.market_feed import patch_of

    rows = [{**patch_of(MarketRow(r["symbol"], T0, r["price"], 0.5, r["quote_volume_24h"],
                                  open_interest_usd=r["open_interest_usd"]))}
            for r in reversed(market(120))]  # any order in
    free, pro, elite = (tier_of(p).rows(rows) for p in ("free", "pro", "elite"))
    assert [r["symbol"] for r in free] == [f"S{i:03d}USDT" for i in range(50)]
    assert all(r["openInterestUsd"] is None for r in free)
    assert len(pro) == 100 and pro[0]["openInterestUsd"] == 5e6
    assert len(elite) == 120


# --- the bridge on the injected clock -------------------------------------------------------------------------


class RecordingSio:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, Any, Any]] = []

    async def emit(self, event: str, data: Any, to: Any = None, **kwargs: Any) -> None:
        self.emitted.append((event, data, to))

    def to(self, event: str, room: str) -> list[Any]:
        return [d for e, d, to in self.emitted if e == event and (to == room or (isinstance(to, list)
                                                                              and room in to))]


@asynccontextmanager
async def bridge_on(bus: MemoryBus, clock: FakeClock, sio: RecordingSio) -> AsyncIterator[RealtimeBridge]:
    bridge = RealtimeBridge(bus=bus, sio=sio, feed=MarketFeed(),  # type: ignore[arg-type]
                            open_interest=OpenInterestCache(clock, 360, 1800), clock=clock,
                            sessions=None, debounce_ms=3_600_000)  # type: ignore[arg-type]
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


async def move_to(clock: FakeClock, hms: str) -> None:
    """Set the clock and wait until the schedule has done what is due and sleeps again."""
    clock.set(at(hms))
    await clock.parked()


async def test_alerts_wait_for_their_tiers_boundary_and_go_out_as_one_batch(clock: FakeClock) -> None:
    bus, sio = MemoryBus(), RecordingSio()
    async with bridge_on(bus, clock, sio) as bridge:
        await clock.parked()
        await move_to(clock, "20:14:59.999")  # the 20:05 and 20:10 boundaries passed with nothing queued
        await bus.publish(topics.ALERTS_VOLUME, ALERT)
        await bus.publish(topics.ALERTS_VOLUME, {**ALERT, "symbol": "ETHUSDT", "id": "a2"})
        await eventually(lambda: bridge.queued_alerts("free") == 2 and bridge.queued_alerts("pro") == 2)
        await eventually(lambda: len(sio.to("volume-alert", "tier-elite")) == 2)  # elite: each at once
        assert sio.to("volume-alerts", "tier-free") == [] and sio.to("volume-alerts", "tier-pro") == []

        await move_to(clock, "20:15:00.000")
        [free] = sio.to("volume-alerts", "tier-free")
        [pro] = sio.to("volume-alerts", "tier-pro")
        assert [a["id"] for a in free["alerts"]] == ["a1", "a2"] and free["at"] == at("20:15:00.000")
        assert free["nextAt"] == at("20:30:00.000") and pro["nextAt"] == at("20:20:00.000")
        assert sio.to("volume-alert", "tier-free") == []  # never one by one

        # 20:19:59.999 → pro's 20:20 batch; free waits for 20:30.
        await move_to(clock, "20:19:59.999")
        await bus.publish(topics.ALERTS_VOLUME, {**ALERT, "id": "a3"})
        await eventually(lambda: bridge.queued_alerts("pro") == 1)
        await move_to(clock, "20:20:00.000")
        assert [a["id"] for a in sio.to("volume-alerts", "tier-pro")[-1]["alerts"]] == ["a3"]
        assert len(sio.to("volume-alerts", "tier-free")) == 1 and bridge.queued_alerts("free") == 1
        await move_to(clock, "20:29:59.999")
        assert len(sio.to("volume-alerts", "tier-free")) == 1
        await move_to(clock, "20:30:00.000")
        assert [a["id"] for a in sio.to("volume-alerts", "tier-free")[-1]["alerts"]] == ["a3"]


async def test_each_tier_gets_its_own_table_at_its_refresh_boundary(clock: FakeClock) -> None:
    bus, sio = MemoryBus(), RecordingSio()
    async with bridge_on(bus, clock, sio) as bridge:
        await clock.parked()
        await bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": market(120)})
        await eventually(lambda: bridge.pending_rows() == 120)
        await bridge.flush()  # the debounce: real-time tiers only
        [patches] = sio.to("market", "tier-elite")
        assert len(patches["rows"]) == 120 and patches["full"] is False
        assert sio.to("market", "tier-free") == [] and sio.to("market", "tier-pro") == []

        await move_to(clock, "20:04:59.999")
        assert sio.to("market", "tier-pro") == []
        await move_to(clock, "20:05:00.000")
        [pro] = sio.to("market", "tier-pro")
        assert pro["full"] is True and len(pro["rows"]) == plan_named("pro").symbols_in_table
        assert pro["rows"][0]["symbol"] == "S000USDT" and pro["rows"][0]["openInterestUsd"] == 5e6
        assert sio.to("market", "tier-free") == []

        await move_to(clock, "20:14:59.999")
        assert sio.to("market", "tier-free") == []
        await move_to(clock, "20:15:00.000")
        [free] = sio.to("market", "tier-free")
        assert len(free["rows"]) == plan_named("free").symbols_in_table
        assert {r["openInterestUsd"] for r in free["rows"]} == {None}
        assert len(sio.to("market", "tier-pro")) == 3  # 20:05, 20:10, 20:15


async def test_a_batch_is_delivered_by_one_api_process_only(clock: FakeClock) -> None:
    """Two API processes share a bus: both queue every alert, the one claiming tier + boundary first emits."""
    bus, sios = MemoryBus(), (RecordingSio(), RecordingSio())
    async with bridge_on(bus, clock, sios[0]) as first, bridge_on(bus, clock, sios[1]) as second:
        await clock.parked(2)
        await move_to(clock, "20:14:00.000")
        await clock.parked(2)
        await bus.publish(topics.ALERTS_VOLUME, ALERT)
        await eventually(lambda: first.queued_alerts("free") == 1 and second.queued_alerts("free") == 1)
        clock.set(at("20:15:00.000"))
        await clock.parked(2)
        batches = [b for s in sios for b in s.to("volume-alerts", "tier-free")]
        assert len(batches) == 1 and batches[0]["alerts"][0]["id"] == "a1"
        assert first.queued_alerts("free") == second.queued_alerts("free") == 0


# --- a live connection follows its user's plan -------------------------------------------------------------------


class Client:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.tiers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.tables: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.sio.on("tier", self.tiers.put)
        self.sio.on("market", self.tables.put)
        self.sio.on("disconnect", lambda *_: self.disconnected.set())

    async def next(self, queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
        return await asyncio.wait_for(queue.get(), 5)


async def test_a_plan_change_moves_live_connections_and_a_suspension_closes_them(sqlite_runtime: Runtime) -> None:
    accounts = sqlite_runtime.services.accounts
    user, token = await user_on_plan(sqlite_runtime, "free")
    _, admin_token = await user_on_plan(sqlite_runtime, "free", Role.ADMIN)
    admin = await accounts.principal(admin_token)
    app = create_app(sqlite_runtime)
    async with serving(app) as url:
        await sqlite_runtime.bus.publish(topics.MARKET_TICKERS, {"time": T0, "rows": market(60)})
        await eventually(lambda: len(app.other_asgi_app.state.market_feed.snapshot()) == 60)
        by_token, by_cookie, anonymous = Client(), Client(), Client()
        await by_token.sio.connect(url, transports=["websocket"], auth={"token": token})
        await by_cookie.sio.connect(url, transports=["websocket"], headers={"Cookie": f"mp_access={token}"})
        await anonymous.sio.connect(url, transports=["websocket"])
        for client in (by_token, by_cookie, anonymous):
            assert (await client.next(client.tiers))["tier"] == "free"
            assert len((await client.next(client.tables))["rows"]) == 50

        await accounts.admin.update(admin, user.id, {"plan": "elite"}, None)
        for client in (by_token, by_cookie):
            tier = await client.next(client.tiers)
            assert (tier["plan"], tier["tier"], tier["alertBatchMs"]) == ("elite", "elite", 0)
            table = await client.next(client.tables)
            assert table["full"] is True and len(table["rows"]) == 60  # every symbol, at once
        assert anonymous.tiers.empty()  # not that user's

        await accounts.admin.update(admin, user.id, {"status": "suspended"}, None)
        for client in (by_token, by_cookie):
            await asyncio.wait_for(client.disconnected.wait(), 5)
        assert anonymous.sio.connected
        await anonymous.sio.disconnect()


def test_a_tier_tells_its_client_when_the_next_batch_and_table_come() -> None:
    free = tier_of("free").describe(plan_named("free"), at("20:14:59.999"))
    assert (free["plan"], free["room"], free["symbols"], free["openInterest"]) == ("free", "tier-free", 50, False)
    assert free["nextAlertBatchAt"] == free["nextTableAt"] == at("20:15:00.000")
    pro = tier_of("pro").describe(plan_named("pro"), at("20:15:00.000"))
    assert pro["nextAlertBatchAt"] == pro["nextTableAt"] == at("20:20:00.000")
    enterprise = tier_of("enterprise").describe(plan_named("enterprise"), at("20:15:00.000"))
    assert (enterprise["plan"], enterprise["tier"], enterprise["nextAlertBatchAt"], enterprise["nextTableAt"]) == (
        "enterprise", "elite", None, None)
