"""The signal workers on the bus, as `pulse worker` runs them: a webhook's nudge is processed at once, computed
signals run on the lease holder from the bus's closed candles, and both reach the subscriber's outbox once; a
signal stored while no worker ran is processed once one starts."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from marketpulse.bus import topics
from marketpulse.clock import FakeClock
from marketpulse.delivery.tables import NotificationRow
from marketpulse.marketdata.models import Candle
from marketpulse.runtime import Runtime
from marketpulse.signals.tables import SignalHistoryRow
from marketpulse.signals.worker import ComputedSignals, SignalWorker
from support.waiting import drained, eventually

from .conftest import admin, config, destination, user

pytestmark = pytest.mark.asyncio
MINUTE = 60_000


def minutes(start: int, closes: list[float]) -> list[Candle]:
    return [Candle("BTCUSDT", "1m", start + i * MINUTE, c, c + 1, c - 1, c, 1.0, c) for i, c in enumerate(closes)]


async def outbox(runtime: Runtime) -> list[NotificationRow]:
    async with runtime.sessions() as s:
        return list(await s.scalars(select(NotificationRow)))


async def test_webhook_and_computed_signals_reach_the_subscriber(client: httpx.AsyncClient, runtime: Runtime,
                                                                 clock: FakeClock) -> None:
    auth = await admin(client, runtime)
    posted = await config(client, auth)
    computed_cfg = await config(client, auth, symbol="BTCUSDT", timeframe="1m", key_value=0.5, atr_period=2,
                                computed=True)
    owner, user_auth = await user(client, runtime, "ana@example.com")
    email = await destination(runtime, owner)
    for cid in (posted["id"], computed_cfg["id"]):
        made = await client.post("/api/v1/signals/subscriptions", json={"config_id": cid, "channels": [email]},
                                 headers=user_auth)
        assert made.status_code == 201, made.text
    worker = SignalWorker(runtime.services.signals, runtime.bus, poll_s=3600)
    computed = ComputedSignals(runtime.services.signals, runtime.bus, runtime.leases, ttl_ms=15_000, clock=clock)
    await worker.start()
    await computed.start()
    try:
        assert computed.lease.held
        bar = clock.now_ms() - clock.now_ms() % 3_600_000 - 3_600_000
        resp = await client.post(f"/webhook/tradingview/{posted['token']}",
                                 json={"action": "sell", "ticker": "BINANCE:BTCUSDT.P", "interval": "60",
                                       "close": 61_000, "time": bar})
        assert resp.json()["status"] == "accepted"
        # Falling then rising closes: the stop is crossed upward once the ATR (2 bars) has warmed up.
        start = clock.now_ms() - clock.now_ms() % MINUTE - 20 * MINUTE
        closes = [100.0, 99.0, 98.0, 97.0, 96.0, 95.0, 100.0, 105.0, 110.0, 115.0]
        await runtime.bus.publish(topics.MARKET_CANDLES, topics.CandlesEvent(minutes(start, closes)))
        await drained(runtime.bus)
        rows = await eventually(lambda: _both(runtime), what="a posted and a computed signal processed")
        sent = await outbox(runtime)
        assert {(n.owner_id, n.message["config_id"], n.message["source"]) for n in sent} >= {
            (owner, posted["id"], "tradingview"), (owner, computed_cfg["id"], "computed")}
        assert len(sent) == len(rows)  # one email per signal
        assert computed.raised >= 1
    finally:
        await computed.stop()
        await worker.stop()


async def _both(runtime: Runtime) -> list[SignalHistoryRow] | None:
    async with runtime.sessions() as s:
        rows = list(await s.scalars(select(SignalHistoryRow)))
    sources = {r.source for r in rows}
    return rows if sources == {"tradingview", "computed"} and all(r.status == "processed" for r in rows) else None


async def test_a_signal_stored_while_no_worker_ran_is_processed_when_one_starts(client: httpx.AsyncClient,
                                                                        runtime: Runtime, clock: FakeClock) -> None:
    made = await config(client, await admin(client, runtime))
    owner, user_auth = await user(client, runtime, "ana@example.com")
    await client.post("/api/v1/signals/subscriptions", json={"config_id": made["id"],
                                                             "channels": [await destination(runtime, owner)]},
                      headers=user_auth)
    resp = await client.post(f"/webhook/tradingview/{made['token']}", json={"action": "buy"})
    assert resp.json()["status"] == "accepted"  # no worker yet
    worker = SignalWorker(runtime.services.signals, runtime.bus, poll_s=0.05)
    await worker.start()
    try:
        await eventually(lambda: worker.processed >= 1, what="the waiting signal processed")
    finally:
        await worker.stop()
    assert len(await outbox(runtime)) == 1
