"""Deployments under the risk manager: refused entries never reach the engine, a refused flip still exits,
and a deployment's trades are readable from its stored snapshot by a process that doesn't run it."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from sqlalchemy import select, update

from marketpulse.backtest import Backtest
from marketpulse.bus import topics
from marketpulse.clock import FakeClock
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.models import Candle
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.deployments import DeploymentService, DeploymentSpec
from marketpulse.trading.paper.orders import OrderSpec, OrderType, Side
from marketpulse.trading.paper.runner import PaperRunner
from marketpulse.trading.paper.service import PaperTradingService, PositionBusy, PositionNotFound
from marketpulse.trading.paper.tables import PaperAccountRow, PaperFillRow
from support.topics import message

from .helpers import MINUTE, T0, config, listed
from .test_parity import expected_fills, fill_key

PARAMS = {"fast": 2, "slow": 3}
# Flat, a rally (EMA(2) crosses above EMA(3): long), then a slide (crosses below: flip short), then flat.
CLOSES = [100.0] * 6 + [101.0, 102.5, 104.0, 105.0, 105.5] + [104.0, 102.0, 100.0, 98.0, 97.0] + [97.0] * 4



@pytest.fixture(autouse=True)
async def market(runtime: Runtime) -> None:
    await listed(runtime, "BTCUSDT")  # deployments are refused on symbols with no market data

def minutes() -> list[Candle]:
    out, prev = [], CLOSES[0]
    for i, c in enumerate(CLOSES):
        out.append(Candle("BTCUSDT", "1m", T0 + i * MINUTE, prev, max(prev, c), min(prev, c), c, 1.0, c))
        prev = c
    return out


def as_frame(candles: list[Candle]) -> CandleFrame:
    col = lambda name: np.array([getattr(c, name) for c in candles])  # noqa: E731
    return CandleFrame(col("open_time").astype(np.int64), col("open"), col("high"), col("low"), col("close"),
                       col("volume"), "BTCUSDT", "1m")


async def feed(runner: PaperRunner, clock: FakeClock, candles: list[Candle]) -> None:
    for c in candles:
        clock.set(c.open_time + MINUTE)
        payload = {"interval": "1m", "candles": [msgspec.to_builtins(c)]}
        await runner.on_candles_message(message(topics.MARKET_CANDLES, payload))


def make_runner(runtime: Runtime, **overrides: object) -> PaperRunner:
    runner = PaperRunner(runtime)
    runner.paper = PaperTradingService(runtime.sessions, runtime.bus, runtime.clock, config(**overrides))
    runner.deployments = DeploymentService(runtime.sessions, runner.paper)
    return runner


async def test_the_script_makes_a_long_then_a_flip_in_a_backtest() -> None:
    trades = Backtest(as_frame(minutes()), "ema_cross", PARAMS, cash=10_000.0, fee_bps=4).run().trades
    assert [t.side for t in trades] == ["long", "short"]


async def test_a_refused_entry_never_reaches_the_engine(runtime: Runtime, clock: FakeClock) -> None:
    runner = make_runner(runtime, max_position_notional=500.0)
    row = await runner.deployments.deploy("default", DeploymentSpec("ema_cross", "BTCUSDT", "1m", PARAMS,
                                                                    cash=10_000.0))
    await feed(runner, clock, minutes())
    assert runner.deployments.trades(row.id) == []
    rejected = await runner.paper.orders("default", "rejected")
    assert rejected and all(o.deployment_id == row.id for o in rejected)
    assert rejected[-1].reason is not None and rejected[-1].reason.startswith("max_position_size")
    assert await runner.paper.positions("default") == []
    assert await runner.paper.orders("default", "open") == []


async def test_a_refused_flip_still_exits(runtime: Runtime, clock: FakeClock) -> None:
    runner = make_runner(runtime)
    row = await runner.deployments.deploy("default", DeploymentSpec("ema_cross", "BTCUSDT", "1m", PARAMS,
                                                                    cash=10_000.0))
    candles = minutes()
    long_entry = Backtest(as_frame(candles), "ema_cross", PARAMS, cash=10_000.0, fee_bps=4).run().trades[0]
    entered = (long_entry.entry_time - T0) // MINUTE + 1
    await feed(runner, clock, candles[:entered])
    assert [p.quantity > 0 for p in await runner.paper.positions("default")] == [True]
    async with runtime.sessions() as s:  # the circuit breaker trips (as after a loss elsewhere in the account)
        await s.execute(update(PaperAccountRow).values(halted_until_ms=T0 + 86_400_000))
        await s.commit()
    await feed(runner, clock, candles[entered:])

    trades = runner.deployments.trades(row.id)
    assert trades is not None and [(t.side, t.exit_time is not None) for t in trades] == [("long", True)]
    assert await runner.paper.positions("default") == []  # flat: exited, not reversed
    [refused] = await runner.paper.orders("default", "rejected")
    assert refused.side == "sell" and refused.reason is not None and refused.reason.startswith("account_halted")
    exits = [o for o in await runner.paper.orders("default", "filled") if o.side == "sell"]
    assert len(exits) == 1 and exits[0].quantity == trades[0].size

    # Another process (an API apart from the worker) reads the same trades from the stored snapshot.
    elsewhere = DeploymentService(runtime.sessions, runner.paper)
    [stored] = await elsewhere.for_owner("default")
    assert elsewhere.trades(row.id, stored.engine_snapshot) == trades


async def test_a_failed_minute_redelivered_by_the_bus_books_nothing_twice(
    runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    candles = minutes()
    expected = Backtest(as_frame(candles), "ema_cross", PARAMS, cash=10_000.0, fee_bps=4).run().trades
    runner = make_runner(runtime)
    row = await runner.deployments.deploy("default", DeploymentSpec("ema_cross", "BTCUSDT", "1m", PARAMS,
                                                                    cash=10_000.0))
    flip = (expected[1].entry_time - T0) // MINUTE  # the minute the flip fills: two fills, then a decision
    await feed(runner, clock, candles[:flip])

    real_save = DeploymentService._save
    calls = 0

    async def save_fails_once(self: DeploymentService, live: object, *, with_history: bool) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away after the fills were committed")
        await real_save(self, live, with_history=with_history)  # type: ignore[arg-type]

    monkeypatch.setattr(DeploymentService, "_save", save_fails_once)
    with pytest.raises(ConnectionError):
        await feed(runner, clock, candles[flip:flip + 1])
    await feed(runner, clock, candles[flip:])  # the bus's redelivery, then the rest

    assert runner.deployments.trades(row.id) == expected
    async with runtime.sessions() as s:
        fills = (await s.execute(select(PaperFillRow))).scalars().all()
    assert sorted(fill_key(f) for f in fills) == sorted(expected_fills(expected))  # each once, none lost


async def test_stopping_withdraws_its_unfilled_order(runtime: Runtime, clock: FakeClock) -> None:
    candles = minutes()
    entry = Backtest(as_frame(candles), "ema_cross", PARAMS, cash=10_000.0, fee_bps=4).run().trades[0]
    runner = make_runner(runtime)
    row = await runner.deployments.deploy("default", DeploymentSpec("ema_cross", "BTCUSDT", "1m", PARAMS))
    await feed(runner, clock, candles[: (entry.entry_time - T0) // MINUTE])  # decided, not yet filled
    [pending] = await runner.paper.orders("default", "open")
    assert pending.deployment_id == row.id
    await runner.deployments.stop("default", row.id)
    await feed(runner, clock, candles[(entry.entry_time - T0) // MINUTE:])
    assert (await runner.paper.order("default", pending.id)).reason == "deployment stopped"
    assert await runner.paper.positions("default") == []


async def test_a_deployment_trades_its_own_position_beside_the_owners(runtime: Runtime, clock: FakeClock) -> None:
    candles = minutes()
    expected = Backtest(as_frame(candles), "ema_cross", PARAMS, cash=5_000.0, fee_bps=4).run().trades
    runner = make_runner(runtime)
    await runner.paper.on_candles(candles[:1])
    await runner.paper.place_order("default", OrderSpec("BTCUSDT", Side.SELL, OrderType.MARKET, 20.0))  # a short
    row = await runner.deployments.deploy("default", DeploymentSpec("ema_cross", "BTCUSDT", "1m", PARAMS,
                                                                    cash=5_000.0))
    await feed(runner, clock, candles)
    # The strategy went long then flipped short; the owner's short was never netted against it.
    assert runner.deployments.trades(row.id) == expected
    held = {(p.deployment_id, p.quantity) for p in await runner.paper.positions("default")}
    assert held == {("", -20.0), (row.id, -expected[-1].size)}

    # Stopping with close_position closes the deployment's position only.
    await runner.deployments.stop("default", row.id, close_position=True)
    [mine] = await runner.paper.positions("default")
    assert (mine.deployment_id, mine.quantity) == ("", -20.0)
    filled = await runner.paper.orders("default", "filled")
    [closing] = [o for o in filled if o.reason == "position closed by the owner"]
    assert closing.deployment_id == row.id and closing.side == "buy" and closing.quantity == expected[-1].size


async def test_stopping_can_leave_the_position_for_the_owner_to_close_later(
    runtime: Runtime, clock: FakeClock
) -> None:
    candles = minutes()
    runner = make_runner(runtime)
    row = await runner.deployments.deploy("default", DeploymentSpec("ema_cross", "BTCUSDT", "1m", PARAMS,
                                                                    cash=10_000.0))
    await feed(runner, clock, candles)
    with pytest.raises(PositionBusy):  # a running strategy's position is its own to manage
        await runner.paper.close_position("default", "BTCUSDT", book=row.id)
    await runner.deployments.stop("default", row.id)  # leave it
    [left] = await runner.paper.positions("default")
    assert left.deployment_id == row.id and left.quantity < 0
    with pytest.raises(PositionNotFound):
        await runner.paper.close_position("default", "BTCUSDT")  # the manual book holds nothing
    await runner.paper.close_position("default", "BTCUSDT", book=row.id)
    assert await runner.paper.positions("default") == []


async def test_an_entry_is_checked_again_where_it_fills(runtime: Runtime, clock: FakeClock) -> None:
    candles = minutes()
    entry = Backtest(as_frame(candles), "ema_cross", PARAMS, cash=10_000.0, fee_bps=4).run().trades[0]
    runner = make_runner(runtime)
    row = await runner.deployments.deploy("default", DeploymentSpec("ema_cross", "BTCUSDT", "1m", PARAMS))
    decided = (entry.entry_time - T0) // MINUTE
    await feed(runner, clock, candles[:decided])  # accepted at the decision's close, not yet filled
    [pending] = await runner.paper.orders("default", "open")
    async with runtime.sessions() as s:  # between the decision and its fill, the account is halted
        await s.execute(update(PaperAccountRow).values(halted_until_ms=T0 + 86_400_000))
        await s.commit()
    await feed(runner, clock, candles[decided:decided + 1])
    refused = await runner.paper.order("default", pending.id)
    assert refused.status == "rejected" and refused.reason is not None
    assert refused.reason.startswith("at fill: account_halted")
    assert await runner.paper.positions("default") == []
    assert runner.deployments.trades(row.id) == []  # the engine never entered either


async def test_a_liquidation_closes_and_stops_the_deployments(runtime: Runtime, clock: FakeClock) -> None:
    candles = minutes()
    runner = make_runner(runtime, daily_loss_limit_pct=0.0)
    row = await runner.deployments.deploy("default", DeploymentSpec("ema_cross", "BTCUSDT", "1m", PARAMS,
                                                                    cash=10_000.0))
    await feed(runner, clock, candles)
    [short] = await runner.paper.positions("default")
    assert short.deployment_id == row.id and short.quantity < 0
    await runner.paper.on_marks({"BTCUSDT": 250.0})  # the short's loss passes the whole balance
    assert await runner.paper.positions("default") == []
    account = await runner.paper.account("default")
    assert account["balance"] == 0.0 and account["equity"] == 0.0
    [stopped] = await runner.deployments.for_owner("default")
    assert stopped.status == "stopped"
    later = [Candle("BTCUSDT", "1m", candles[-1].open_time + (i + 1) * MINUTE, 250.0, 250.0, 250.0, 250.0, 1.0, 250.0)
             for i in range(3)]
    await feed(runner, clock, later)  # the runner drops it: no new orders from a liquidated deployment
    assert await runner.paper.orders("default", "open") == []
    assert await runner.paper.positions("default") == []
