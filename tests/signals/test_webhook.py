"""POST /webhook/tradingview/{token}: acknowledged once durably stored, processed by the worker into one outbox row
per subscriber's channel; duplicates counted, stale signals kept and not sent, bad tokens 401 (logged with the
address), malformed payloads 400 and unknown markets 422 (both kept for review), floods 429, the allowlist."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from marketpulse.clock import FakeClock
from marketpulse.delivery.tables import NotificationRow
from marketpulse.runtime import Runtime
from marketpulse.signals.tables import SignalHistoryRow
from marketpulse.signals.worker import SignalWorker
from support.waiting import eventually

from .conftest import admin, config, destination, user

pytestmark = pytest.mark.asyncio
HOUR = 3_600_000


def alert(clock: FakeClock, action: str = "buy", bars_ago: int = 1, **extra: Any) -> dict[str, Any]:
    """The JSON the generated Pine script's alert() sends: the closed bar's open time, in ms, as text."""
    bar = clock.now_ms() - clock.now_ms() % HOUR - bars_ago * HOUR
    return {"symbol": "BINANCE:BTCUSDT.P", "timeframe": "60", "action": action, "price": 62_150.5,
            "time": str(bar), "strategy": "ut_bot"} | extra


async def notifications(runtime: Runtime) -> list[NotificationRow]:
    async with runtime.sessions() as s:
        return list(await s.scalars(select(NotificationRow).order_by(NotificationRow.id)))


async def signal_rows(runtime: Runtime) -> list[SignalHistoryRow]:
    async with runtime.sessions() as s:
        return list(await s.scalars(select(SignalHistoryRow)))


def hook(made: dict[str, Any]) -> str:
    return f"/webhook/tradingview/{made['token']}"


async def test_an_alert_is_stored_then_processed_into_each_subscribers_channels(
        client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    made = await config(client, await admin(client, runtime))
    ana, ana_auth = await user(client, runtime, "ana@example.com")
    bob, bob_auth = await user(client, runtime, "bob@example.com")
    ana_email, ana_hook = await destination(runtime, ana), await destination(runtime, ana, "webhook")
    bob_email = await destination(runtime, bob)
    for auth, channels in ((ana_auth, [ana_email, ana_hook]), (bob_auth, [bob_email])):
        sub = await client.post("/api/v1/signals/subscriptions", json={"config_id": made["id"], "channels": channels},
                                headers=auth)
        assert sub.status_code == 201, sub.text
    body = alert(clock)
    resp = await client.post(hook(made), content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "accepted"
    # Acknowledged = stored; nothing is delivered inside the request.
    assert [(r.status, r.action, r.price, r.source) for r in await signal_rows(runtime)] == [
        ("received", "buy", 62_150.5, "tradingview")]
    assert await notifications(runtime) == []
    worker = SignalWorker(runtime.services.signals, runtime.bus)
    assert await worker.drain() == 1
    sent = await notifications(runtime)
    assert sorted((n.owner_id, n.destination_id) for n in sent) == sorted(
        [(ana, ana_email), (ana, ana_hook), (bob, bob_email)])
    assert {n.message["action"] for n in sent} == {"buy"} and {n.status for n in sent} == {"queued"}
    history = (await client.get("/api/v1/signals/history", params={"config_id": made["id"]},
                                headers=ana_auth)).json()["data"]
    assert [(h["action"], h["status"], h["users_notified"], h["bar_time"]) for h in history] == [
        ("buy", "processed", 2, int(body["time"]))]
    assert await worker.drain() == 0  # nothing twice


async def test_repeats_are_processed_once_and_counted(client: httpx.AsyncClient, runtime: Runtime,
                                                      clock: FakeClock) -> None:
    auth = await admin(client, runtime)
    made = await config(client, auth)
    owner, user_auth = await user(client, runtime, "ana@example.com")
    await client.post("/api/v1/signals/subscriptions", json={"config_id": made["id"],
                                                             "channels": [await destination(runtime, owner)]},
                      headers=user_auth)
    body = json.dumps(alert(clock))
    answers = [await client.post(hook(made), content=body, headers={"Content-Type": "application/json"})
               for _ in range(3)]
    assert [a.json()["status"] for a in answers] == ["accepted", "duplicate", "duplicate"]
    # Two workers racing over the same stored signal: one notification.
    workers = [SignalWorker(runtime.services.signals, runtime.bus) for _ in range(2)]
    assert sum(await asyncio.gather(*(w.drain() for w in workers))) == 1
    assert len(await notifications(runtime)) == 1
    stats = (await client.get(f"/api/v1/admin/signal-configs/{made['id']}/stats", headers=auth)).json()
    assert (stats["signals_received"], stats["duplicates"], stats["users_notified"], stats["deliveries"],
            stats["pending"]) == (1, 2, 1, 1, 0)
    assert stats["median_processing_ms"] == 0.0  # the fake clock did not move


async def test_plain_text_key_values_and_the_secret_in_the_body(client: httpx.AsyncClient, runtime: Runtime) -> None:
    made = await config(client, await admin(client, runtime))
    octobot = await client.post(hook(made), content=b"SYMBOL=BTCUSDT\nSIGNAL=SELL\nPRICE=61000",
                                headers={"Content-Type": "text/plain; charset=utf-8"})
    assert (octobot.status_code, octobot.json()["status"]) == (200, "accepted")
    three_commas = {"secret": made["token"], "action": "enter_long", "bot_uuid": "b-1", "max_lag": "300",
                    "tv_instrument": "BTCUSDT.P", "trigger_price": "61100"}
    by_id = await client.post(f"/webhook/tradingview/{made['id']}", json=three_commas)
    assert (by_id.status_code, by_id.json()["status"]) == (200, "accepted"), by_id.text
    wrong = await client.post(f"/webhook/tradingview/{made['id']}", json=three_commas | {"secret": "nope"})
    assert wrong.status_code == 401
    assert sorted(r.action for r in await signal_rows(runtime)) == ["buy", "sell"]


async def test_a_bad_token_is_401_and_a_security_event_with_the_address(client: httpx.AsyncClient,
                                                                        runtime: Runtime, clock: FakeClock) -> None:
    await config(client, await admin(client, runtime))
    with capture_logs() as logs:
        resp = await client.post("/webhook/tradingview/not-the-token", json=alert(clock))
    assert resp.status_code == 401
    assert resp.json()["detail"]["reason"] == "bad_token"
    event = next(e for e in logs if e["event"].startswith("security: webhook with a bad token"))
    assert event["address"] == "127.0.0.1"
    assert await signal_rows(runtime) == []


async def test_malformed_and_unknown_markets_are_refused_and_kept_for_review(
        client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    auth = await admin(client, runtime)
    made = await config(client, auth)
    broken = await client.post(hook(made), content=b'{"action": "buy", "price": {{close}}}',
                               headers={"Content-Type": "text/plain"})
    assert broken.status_code == 400
    assert broken.json()["detail"]["field"] == "body"
    no_action = await client.post(hook(made), json={"symbol": "BTCUSDT"})
    assert (no_action.status_code, no_action.json()["detail"]["field"]) == (400, "action")
    other = await client.post(hook(made), json=alert(clock, symbol="BINANCE:ETHUSDT.P"))
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["body", "symbol"]
    weekly = await client.post(hook(made), json=alert(clock, timeframe="1W"))
    assert (weekly.status_code, weekly.json()["detail"][0]["loc"]) == (422, ["body", "timeframe"])
    page = (await client.get("/api/v1/admin/signals/rejected", headers=auth)).json()
    assert page["total"] == 4
    assert [(r["status_code"], r["field"]) for r in page["data"]] == [
        (422, "timeframe"), (422, "symbol"), (400, "action"), (400, "body")]
    assert page["data"][-1]["raw"] == '{"action": "buy", "price": {{close}}}'
    assert await signal_rows(runtime) == []
    stats = (await client.get(f"/api/v1/admin/signal-configs/{made['id']}/stats", headers=auth)).json()
    assert (stats["rejected"], stats["signals_received"]) == (4, 0)


async def test_stale_signals_are_stored_counted_and_not_delivered(client: httpx.AsyncClient, runtime: Runtime,
                                                                  clock: FakeClock) -> None:
    auth = await admin(client, runtime)
    made = await config(client, auth)
    owner, user_auth = await user(client, runtime, "ana@example.com")
    await client.post("/api/v1/signals/subscriptions", json={"config_id": made["id"],
                                                             "channels": [await destination(runtime, owner)]},
                      headers=user_auth)
    old = await client.post(hook(made), json=alert(clock, bars_ago=3))
    assert old.json()["status"] == "stale"
    lagged = await client.post(hook(made), json=alert(clock, action="sell", bars_ago=0, max_lag=1,
                                                      timenow=clock.now_ms() - 5_000))
    assert lagged.json()["status"] == "stale"
    assert await SignalWorker(runtime.services.signals, runtime.bus).drain() == 0
    assert await notifications(runtime) == []
    stats = (await client.get(f"/api/v1/admin/signal-configs/{made['id']}/stats", headers=auth)).json()
    assert (stats["signals_received"], stats["stale"], stats["users_notified"]) == (2, 2, 0)


async def test_a_flood_on_one_token_is_429(client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    runtime.settings.webhook_rate_per_minute = 3
    auth = await admin(client, runtime)
    made, other = await config(client, auth), await config(client, auth, atr_period=11)
    codes = [(await client.post(hook(made), json=alert(clock, bars_ago=1 + i % 2))).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = await client.post(hook(made), json=alert(clock))
    assert refused.headers["Retry-After"] == "60" and refused.json()["detail"]["reason"] == "flood"
    assert (await client.post(hook(other), json=alert(clock))).status_code == 200  # its own budget


async def test_the_allowlist_believes_forwarded_for_only_from_configured_proxies(
        client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    made = await config(client, await admin(client, runtime))
    runtime.settings.webhook_allowed_ips = "52.89.214.238,34.212.75.30,54.218.53.128,52.32.178.7"
    tradingview = {"X-Forwarded-For": "52.89.214.238"}
    assert (await client.post(hook(made), json=alert(clock), headers=tradingview)).status_code == 403
    runtime.settings.webhook_trusted_proxies = "127.0.0.1"
    assert (await client.post(hook(made), json=alert(clock), headers=tradingview)).status_code == 200
    assert (await client.post(hook(made), json=alert(clock))).status_code == 403  # the proxy itself
    spoofed = {"X-Forwarded-For": "52.89.214.238, 203.0.113.9"}  # the proxy appended the real sender
    assert (await client.post(hook(made), json=alert(clock), headers=spoofed)).status_code == 403


async def test_a_rotated_token_stops_the_old_url(client: httpx.AsyncClient, runtime: Runtime,
                                                 clock: FakeClock) -> None:
    auth = await admin(client, runtime)
    made = await config(client, auth)
    rotated = (await client.post(f"/api/v1/admin/signal-configs/{made['id']}/rotate-token", headers=auth)).json()
    assert rotated["token"] != made["token"] and rotated["webhook_url"].endswith(rotated["token"])
    assert (await client.post(hook(made), json=alert(clock))).status_code == 401
    assert (await client.post(hook(rotated), json=alert(clock))).status_code == 200
    paused = await client.patch(f"/api/v1/admin/signal-configs/{made['id']}", json={"active": False}, headers=auth)
    assert paused.status_code == 200
    assert (await client.post(hook(rotated), json=alert(clock))).status_code == 401


async def test_a_busy_webhook_loses_nothing(client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    made = await config(client, await admin(client, runtime))
    bodies = [alert(clock, bars_ago=1, time=str(1_700_000_000_000 + i * HOUR)) for i in range(40)]
    for b in bodies:
        b.pop("timeframe")
    answers = await asyncio.gather(*(client.post(hook(made), json=b) for b in bodies))
    assert {a.status_code for a in answers} == {200}
    async with runtime.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(SignalHistoryRow)) == 40


async def test_a_store_out_of_connections_is_503_not_a_traceback(client: httpx.AsyncClient, runtime: Runtime,
                                                                 clock: FakeClock,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    made = await config(client, await admin(client, runtime))

    async def no_connection(*_: Any, **__: Any) -> None:
        raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached")

    monkeypatch.setattr(runtime.services.signals, "ingest", no_connection)
    resp = await client.post(hook(made), json=alert(clock))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"
    assert resp.json()["detail"]["reason"] == "busy"
    assert await signal_rows(runtime) == []


def lagging(clock: FakeClock, bars_ago: int) -> dict[str, Any]:
    """An alert for an older bar that is not stale (its max_lag allows it)."""
    return alert(clock, bars_ago=bars_ago, max_lag=10**6)


async def test_past_the_queue_limit_a_request_is_503_and_the_waiting_ones_are_all_stored(
        client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    """Requests wait for the store in arrival order with no timeout (a burst drains, none refused) until
    PULSE_WEBHOOK_QUEUE_LIMIT wait; the next is a 503 with nothing stored."""
    made = await config(client, await admin(client, runtime))
    await client.post(hook(made), json=lagging(clock, 9))  # config cached: only writes
    runtime.settings.webhook_queue_limit = 3
    gate = runtime.services.signals.gate
    held = [asyncio.Event() for _ in range(gate.slots)]

    async def hold(event: asyncio.Event) -> None:
        async with gate.slot():
            await event.wait()

    holders = [asyncio.create_task(hold(e)) for e in held]
    await eventually(lambda: gate._free.locked(), what="every store slot held")
    waiting = [asyncio.create_task(client.post(hook(made), json=lagging(clock, 2 + i))) for i in range(3)]
    await eventually(lambda: gate.waiting == 3, what="three requests waiting for the store")
    refused = await client.post(hook(made), json=lagging(clock, 8))
    assert refused.status_code == 503 and refused.json()["detail"]["reason"] == "busy"
    assert refused.headers["Retry-After"] == "1"
    for event in held:
        event.set()
    await asyncio.gather(*holders)
    assert [(await w).json()["status"] for w in waiting] == ["accepted"] * 3
    assert sorted(r.bar_time_ms for r in await signal_rows(runtime)) == sorted(
        int(lagging(clock, b)["time"]) for b in (2, 3, 4, 9))


async def test_configs_are_cached_per_process_and_a_change_anywhere_empties_the_cache(
        client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock) -> None:
    """The hot path reads the config once; a rotation in another process (a second service on the same store and
    bus) reaches this one's cache through the bus, so the old token stops here too."""
    from marketpulse.signals.service import SignalsService

    made = await config(client, await admin(client, runtime))
    here = runtime.services.signals
    for bars_ago in (1, 2, 3):
        assert (await client.post(hook(made), json=lagging(clock, bars_ago))).status_code == 200
    assert (here.cache.misses, here.cache.hits) == (1, 2)
    elsewhere = SignalsService(runtime.sessions, runtime.bus, runtime.clock, runtime.settings)
    try:
        rotated = await elsewhere.rotate_token(made["id"])
        await eventually(lambda: here.cache.get(f"id:{made['id']}") is None, what="the cache emptied by the bus")
        assert (await client.post(hook(made), json=lagging(clock, 4))).status_code == 401
        assert (await client.post(f"/webhook/tradingview/{rotated.token}", json=lagging(clock, 4))
                ).status_code == 200
    finally:
        await elsewhere.close()


async def test_a_cached_config_is_read_again_after_its_time(client: httpx.AsyncClient, runtime: Runtime,
                                                            clock: FakeClock) -> None:
    """A change notice lost with a crashed process: the entry expires after CONFIG_CACHE_MS anyway."""
    from sqlalchemy import update

    from marketpulse.signals.service import CONFIG_CACHE_MS
    from marketpulse.signals.tables import SignalConfigRow

    made = await config(client, await admin(client, runtime))
    assert (await client.post(hook(made), json=lagging(clock, 1))).status_code == 200
    async with runtime.sessions() as s:  # paused behind the service's back: no notice
        await s.execute(update(SignalConfigRow).where(SignalConfigRow.id == made["id"]).values(active=False))
        await s.commit()
    assert (await client.post(hook(made), json=lagging(clock, 2))).status_code == 200  # still cached
    clock.advance(CONFIG_CACHE_MS)
    assert (await client.post(hook(made), json=lagging(clock, 3))).status_code == 401
