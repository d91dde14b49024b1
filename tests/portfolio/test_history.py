"""Snapshots and history: the duty under its lease stores each owner's value once per market hour (paper trading as
the source here), thins snapshots past 90 days to one a day, and the history endpoint reports the time-weighted
return without the deposit, the money-weighted return, drawdown and BTC over the same range. SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select, update

from marketpulse.api.app import create_app
from marketpulse.clock import FakeClock
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import save_candles
from marketpulse.portfolio.duty import portfolio_snapshots
from marketpulse.portfolio.tables import PortfolioSnapshotRow
from marketpulse.runtime import Runtime
from marketpulse.tax.tables import TaxTransactionRow
from marketpulse.trading.paper.tables import PaperAccountRow
from support.accounts import session_for, sign_in_user
from support.waiting import eventually

T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC, an hour boundary
H = 3_600_000
DAY = 24 * H


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime)),
                                 base_url="http://localhost") as c:
        yield c


async def set_cash(runtime: Runtime, owner: str, cash: float) -> None:
    async with runtime.sessions() as s:
        await s.execute(update(PaperAccountRow).where(PaperAccountRow.owner_id == owner).values(cash=cash))
        await s.commit()


async def snapshots(runtime: Runtime, owner: str) -> list[tuple[int, float, float]]:
    async with runtime.sessions() as s:
        rows = (await s.execute(select(PortfolioSnapshotRow).where(PortfolioSnapshotRow.owner_id == owner)
                                .order_by(PortfolioSnapshotRow.time_ms))).scalars().all()
    return [(r.time_ms, r.value_usd, r.flow_usd) for r in rows]


async def test_hourly_snapshots_and_performance(client: httpx.AsyncClient, runtime: Runtime,
                                                clock: FakeClock) -> None:
    await save_candles(runtime.sessions, "binance", [
        Candle("BTCUSDT", "1h", T0 - H, 50000, 50000, 50000, 50000, 1, 1),
        Candle("BTCUSDT", "1h", T0 + H, 55000, 55000, 55000, 55000, 1, 1)])
    who = await sign_in_user(runtime)
    await runtime.services.paper.account(who.user_id)  # a paper account with its starting balance
    await set_cash(runtime, who.user_id, 10_000)
    made = await client.post("/api/v1/portfolio/accounts", json={"kind": "paper", "name": "paper"},
                             headers=who.headers)
    assert made.status_code == 201, made.text
    service = runtime.services.portfolio
    await service.wait()
    # the duty under its lease takes the first snapshot at once
    duty = portfolio_snapshots(runtime)
    await duty.start()
    try:
        await eventually(lambda: snapshots(runtime, who.user_id), what="the first snapshot")
        assert duty.lease.held
    finally:
        await duty.stop()
    assert await snapshots(runtime, who.user_id) == [(T0, 10_000, 0)]
    await service.hourly()  # the same hour again: the same row, nothing added
    assert await snapshots(runtime, who.user_id) == [(T0, 10_000, 0)]
    clock.advance(H)  # +10 %
    await set_cash(runtime, who.user_id, 11_000)
    await service.hourly()  # the account's last sync is an hour old: synced again, then snapshotted
    clock.advance(H)  # 1,000 deposited, then +10 % on the 11,000
    async with runtime.sessions() as s:
        s.add(TaxTransactionRow(id=str(uuid.uuid4()), owner_id=who.user_id, dedupe_key=uuid.uuid4().hex,
                                timestamp_ms=T0 + 2 * H - 60_000, type="transfer_in", asset="USDT", amount="1000",
                                price_usd="1", fee_usd="0", account="paper", tx_id="0xdep", source="generic",
                                imported_at_ms=T0, line=1))
        await s.commit()
    await set_cash(runtime, who.user_id, 13_100)
    await service.hourly()
    assert await snapshots(runtime, who.user_id) == [(T0, 10_000, 0), (T0 + H, 11_000, 0),
                                                     (T0 + 2 * H, 13_100, 1000)]
    who = await session_for(runtime, who.user_id)  # two hours on: a fresh access token
    history = await client.get("/api/v1/portfolio/history", params={"from": T0, "to": T0 + 3 * H, "interval": "1h"},
                               headers=who.headers)
    assert history.status_code == 200, history.text
    body = history.json()
    assert [p["value_usd"] for p in body["points"]] == [10_000, 11_000, 13_100]
    perf = body["performance"]
    assert perf["time_weighted_return"] == pytest.approx(0.21)  # 1.1 × 1.1: the deposit is not performance
    assert perf["btc_return"] == pytest.approx(0.1) and perf["excess_vs_btc"] == pytest.approx(0.11)
    assert perf["max_drawdown"] == 0
    r = perf["money_weighted_return"]
    assert 10_000 * (1 + r) + 1000 * (1 + r) ** 0 == pytest.approx(13_100)  # the deposit at the range's end
    assert body["points"][-1]["benchmark_usd"] == pytest.approx(11_000)  # 10,000 held in BTC
    daily = (await client.get("/api/v1/portfolio/history", params={"from": T0, "to": T0 + 3 * H, "interval": "1d"},
                              headers=who.headers)).json()
    assert [p["value_usd"] for p in daily["points"]] == [13_100]
    # another user sees none of it
    other = await sign_in_user(runtime)
    theirs = (await client.get("/api/v1/portfolio/history", headers=other.headers)).json()
    assert theirs["points"] == []


async def test_bad_history_queries_name_the_field(client: httpx.AsyncClient, runtime: Runtime) -> None:
    who = await sign_in_user(runtime)
    for params, field in (({"interval": "1m"}, "interval"), ({"interval": "7x"}, "interval"),
                          ({"from": "yesterday"}, "from"), ({"to": "nope"}, "to"),
                          ({"from": T0, "to": T0 - H}, "from")):
        resp = await client.get("/api/v1/portfolio/history", params=params, headers=who.headers)
        assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["query", field], resp.text


async def test_snapshots_past_90_days_are_thinned_to_one_a_day(runtime: Runtime) -> None:
    who = await sign_in_user(runtime)
    old_day = (T0 - 100 * DAY) // DAY * DAY
    recent = [T0 - k * H for k in range(1, 4)]
    async with runtime.sessions() as s:
        s.add_all([PortfolioSnapshotRow(owner_id=who.user_id, time_ms=t, value_usd=1.0, flow_usd=0.0, btc_usd=None,
                                        by_asset={}) for t in [old_day + k * H for k in range(5)] + recent])
        await s.commit()
    assert await runtime.services.portfolio.thin(T0) == 4
    assert [t for t, _, _ in await snapshots(runtime, who.user_id)] == [old_day + 4 * H, *sorted(recent)]
