"""Property test (hypothesis): random order sequences, prices and gaps through the real paper service and store.

Whatever the sequence, no fill that adds exposure breaches a limit (position size at the fill price, margin at the
account's leverage, concurrent positions), and equity never ends a step below zero: where prices run through the
liquidation level the liquidation rule closes the account, and that is the only way a loss reaches the balance's
floor. The checks spy on `_book_fill` (every fill is booked through it) to see each fill against the books it met.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpulse.bus import topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.trading.paper import service as service_module
from marketpulse.trading.paper.account import Book
from marketpulse.trading.paper.orders import OrderSpec, OrderType, Side, TimeInForce
from marketpulse.trading.paper.service import (
    BookedFill,
    PaperConfig,
    PaperTradingService,
    PositionNotFound,
    RiskRejected,
)
from marketpulse.trading.risk import PLAN_MAX_CONCURRENT_POSITIONS, Plan
from trading.paper.helpers import MINUTE, T0, Collector, candle

SYMBOLS = ("AUSDT", "BUSDT", "CUSDT", "DUSDT")  # four: the free plan's three slots fill up
START_PRICE = 100.0
EPS = 1e-6


@dataclass(frozen=True)
class Order:
    symbol: str
    side: Side
    type: OrderType
    quantity: float
    price_factor: float  # the limit/stop price as a multiple of the current price (0.0001: the "0.01")
    tif: TimeInForce


@dataclass(frozen=True)
class Candle:
    symbol: str
    gap: float  # the open as a multiple of the last price: gaps up and down
    up: float
    down: float
    close_at: float  # where in the bar's range it closes


@dataclass(frozen=True)
class Tick:
    symbol: str
    move: float


@dataclass(frozen=True)
class Close:
    symbol: str


symbol = st.sampled_from(SYMBOLS)
# Sizes around the limits' edges (20k at 100 is 200 units) as well as anywhere between.
quantities = st.one_of(st.sampled_from([1.0, 19.0, 21.0, 99.0, 101.0, 199.0, 201.0, 500.0]), st.floats(0.01, 600.0))
bars = st.builds(Candle, symbol, st.floats(0.4, 2.5), st.floats(0.0, 0.6), st.floats(0.0, 0.6), st.floats(0.0, 1.0))
orders = st.builds(Order, symbol, st.sampled_from(Side), st.sampled_from(OrderType), quantities,
                   st.sampled_from([0.0001, 0.5, 0.9, 0.99, 1.0, 1.01, 1.1, 2.0, 50.0]), st.sampled_from(TimeInForce))


@st.composite
def order_then_bar(draw: st.DrawFn) -> list[Any]:
    """An order and the next bar of its symbol: the pair that decides where (and whether) it fills."""
    order = draw(orders)
    bar = draw(bars)
    return [order, Candle(order.symbol, bar.gap, bar.up, bar.down, bar.close_at)]


steps = st.lists(
    st.one_of(order_then_bar(), st.builds(lambda x: [x], st.one_of(
        orders, bars, st.builds(Tick, symbol, st.floats(0.5, 2.0)), st.builds(Close, symbol)))),
    min_size=1, max_size=20,
).map(lambda groups: [step for group in groups for step in group])
configs = st.builds(
    lambda plan, leverage, notional, slippage, loss: PaperConfig(
        plan=plan, starting_balance=10_000.0, taker_fee_bps=4.0, maker_fee_bps=2.0, slippage_bps=slippage,
        max_position_notional=notional, daily_loss_limit_pct=loss, leverage=leverage,
    ),
    st.sampled_from([Plan.FREE, Plan.PRO]), st.sampled_from([1.0, 3.0, 20.0]),
    st.sampled_from([2_000.0, 20_000.0, 100_000.0]), st.sampled_from([0.0, 10.0]), st.sampled_from([0.0, 0.05]),
)


@dataclass
class Booked:
    fill: BookedFill
    before: dict[tuple[str, str], float]
    equity_before: float
    after: dict[tuple[str, str], float]
    notional_after: float


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[Booked]:
    seen: list[Booked] = []
    real = service_module._book_fill

    def booked(s: Any, owner_id: str, book: Book, fill: BookedFill) -> Any:
        before = {k: p.quantity for k, p in book.positions.items()}
        equity = book.equity()  # valued with the fill's symbol at the fill price, as the check at fill does
        row = real(s, owner_id, book, fill)
        after = {k: p.quantity for k, p in book.positions.items()}
        seen.append(Booked(fill, before, equity, after, book.notional()))
        return row

    monkeypatch.setattr(service_module, "_book_fill", booked)
    return seen


def _adds_exposure(before: float, after: float) -> bool:
    return abs(after) > abs(before) + EPS or (before * after < 0)


def check_fills(config: PaperConfig, seen: list[Booked]) -> None:
    cap = PLAN_MAX_CONCURRENT_POSITIONS[config.plan]
    for b in seen:
        key = (b.fill.symbol, b.fill.book)
        if not _adds_exposure(b.before.get(key, 0.0), b.after.get(key, 0.0)):
            continue  # exits pass every limit, by design
        assert abs(b.after[key]) * b.fill.price <= config.max_position_notional * (1 + EPS), b
        assert b.notional_after / config.leverage <= b.equity_before * (1 + EPS) + EPS, b
        assert cap is None or len(b.after) <= cap, b
    seen.clear()


async def run(config: PaperConfig, script: list[Any], template: Path, seen: list[Booked]) -> None:
    workdir = Path(tempfile.mkdtemp())
    try:
        db = workdir / "paper.db"
        shutil.copy(template, db)
        clock = FakeClock(T0)
        rt = Runtime.open(Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", data_dir=workdir),
                          clock=clock, bus=MemoryBus())
        try:
            await play(rt, clock, config, script, seen)
        finally:
            await rt.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def play(rt: Runtime, clock: FakeClock, config: PaperConfig, script: list[Any], seen: list[Booked]) -> None:
    halts = await Collector.on(rt.bus, topics.RISK_HALTS)
    paper = PaperTradingService(rt.sessions, rt.bus, clock, config)
    prices = dict.fromkeys(SYMBOLS, START_PRICE)
    await paper.on_candles([candle(sym, T0 - MINUTE, START_PRICE) for sym in SYMBOLS])
    liquidations = 0
    for step in script:
        await act(paper, clock, prices, step)
        check_fills(config, seen)
        account = await paper.account("default")
        assert account["equity"] >= -EPS, (step, account)
        cap = PLAN_MAX_CONCURRENT_POSITIONS[config.plan]
        assert cap is None or account["open_positions"] <= cap
        while not halts.items.empty():
            liquidations += (await halts.next())["reason"] == "liquidation"
        if account["balance"] <= EPS and account["open_positions"] == 0 and account["fees"] > 0:
            # The balance reached its floor: only the liquidation rule takes it there.
            assert liquidations > 0, account


async def act(paper: PaperTradingService, clock: FakeClock, prices: dict[str, float], step: Any) -> None:
    if isinstance(step, Order):
        price = prices[step.symbol] * step.price_factor
        spec = OrderSpec(step.symbol, step.side, step.type, step.quantity, step.tif,
                         price if step.type is OrderType.LIMIT else None,
                         price if step.type is OrderType.STOP else None)
        with contextlib.suppress(RiskRejected):
            await paper.place_order("default", spec)
    elif isinstance(step, Candle):
        t = clock.now_ms()
        o = prices[step.symbol] * step.gap
        high, low = o * (1 + step.up), o * (1 - step.down)
        prices[step.symbol] = low + (high - low) * step.close_at
        clock.set(t + MINUTE)
        await paper.on_candles([candle(step.symbol, t, o, h=high, low=low, c=prices[step.symbol])])
    elif isinstance(step, Tick):
        prices[step.symbol] *= step.move
        await paper.on_marks({step.symbol: prices[step.symbol]})
    else:
        with contextlib.suppress(PositionNotFound):
            await paper.close_position("default", step.symbol)


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(config=configs, script=steps)
def test_no_accepted_sequence_breaches_a_limit_or_goes_below_zero(
    config: PaperConfig, script: list[Any], sqlite_template: Path, spy: list[Booked]
) -> None:
    spy.clear()
    asyncio.run(run(config, script, sqlite_template, spy))
