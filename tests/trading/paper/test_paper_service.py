"""The paper service on a real database (SQLite and PostgreSQL): fills, time in force, risk, halts, owners."""

from __future__ import annotations

import pytest

from marketpulse.bus import topics
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.orders import OrderSpec, OrderStatus, OrderType, Side, TimeInForce
from marketpulse.trading.paper.service import (
    OrderNotFound,
    OrderNotOpen,
    PaperTradingService,
    RiskRejected,
    UnknownSymbol,
)
from marketpulse.trading.risk import MAINTENANCE_MARGIN_RATE, Plan, liquidation_price, next_utc_midnight_ms

from .helpers import MINUTE, T0, Collector, candle, config, listed


def service(runtime: Runtime, **overrides: object) -> PaperTradingService:
    return PaperTradingService(runtime.sessions, runtime.bus, runtime.clock, config(**overrides))


def market(symbol: str, side: Side, qty: float) -> OrderSpec:
    return OrderSpec(symbol, side, OrderType.MARKET, qty)


async def test_a_market_order_fills_at_the_next_bars_open_and_is_published(runtime: Runtime) -> None:
    fills = await Collector.on(runtime.bus, topics.PAPER_FILLS)
    paper = service(runtime)
    await paper.on_candles([candle("BTCUSDT", T0 - MINUTE, 100.0)])  # a mark to size the order with
    order = await paper.place_order("default", market("BTCUSDT", Side.BUY, 2.0))
    # A bar that opened before the order arrived must not fill it (that would be look-ahead).
    await paper.on_candles([candle("BTCUSDT", T0 - MINUTE, 100.0, c=101.0)])
    assert (await paper.order("default", order.id)).status == OrderStatus.OPEN.value
    await paper.on_candles([candle("BTCUSDT", T0, 102.0, h=104.0, low=101.0, c=103.0)])
    filled = await paper.order("default", order.id)
    assert filled.status == OrderStatus.FILLED.value and filled.fill_price == 102.0
    assert filled.fee == pytest.approx(2 * 102.0 * 4 / 10_000)
    event = await fills.next()
    assert event["order_id"] == order.id and event["price"] == 102.0 and event["side"] == "buy"
    account = await paper.account("default")
    assert account["unrealized_pnl"] == pytest.approx(2.0)  # marked at the close, 103
    assert account["balance"] == pytest.approx(10_000.0 - filled.fee)
    assert account["equity"] == pytest.approx(10_000.0 - filled.fee + 2.0)
    [pos] = await paper.positions("default")
    assert (pos.symbol, pos.quantity, pos.avg_price, pos.mark_price) == ("BTCUSDT", 2.0, 102.0, 103.0)


async def test_limit_rests_until_touched_then_the_sale_realizes_pnl(runtime: Runtime) -> None:
    paper = service(runtime, taker_fee_bps=0.0, maker_fee_bps=0.0)
    await listed(runtime, "ETHUSDT")
    buy = await paper.place_order("default", OrderSpec("ETHUSDT", Side.BUY, OrderType.LIMIT, 1.0,
                                                        limit_price=95.0))
    await paper.on_candles([candle("ETHUSDT", T0, 100.0, h=101.0, low=96.0, c=99.0)])
    assert (await paper.order("default", buy.id)).status == "open"
    await paper.on_candles([candle("ETHUSDT", T0 + MINUTE, 99.0, h=99.0, low=94.0, c=96.0)])
    assert (await paper.order("default", buy.id)).fill_price == 95.0
    await paper.place_order("default", OrderSpec("ETHUSDT", Side.SELL, OrderType.STOP, 1.0, stop_price=90.0))
    await paper.on_candles([candle("ETHUSDT", T0 + 2 * MINUTE, 92.0, h=93.0, low=85.0, c=86.0)])
    account = await paper.account("default")
    assert account["realized_pnl"] == pytest.approx(-5.0) and account["open_positions"] == 0
    assert await paper.positions("default") == []


async def test_day_orders_expire_at_utc_midnight_and_ioc_gets_one_bar(runtime: Runtime, clock: FakeClock) -> None:
    paper = service(runtime)
    await listed(runtime, "BTCUSDT")
    day = await paper.place_order("default", OrderSpec("BTCUSDT", Side.BUY, OrderType.LIMIT, 0.1,
                                                        limit_price=50.0, time_in_force=TimeInForce.DAY))
    ioc = await paper.place_order("default", OrderSpec("BTCUSDT", Side.BUY, OrderType.LIMIT, 0.1,
                                                        limit_price=99.0, time_in_force=TimeInForce.IOC))
    await paper.on_candles([candle("BTCUSDT", T0, 100.0, low=98.0)])  # touched 99, but not at the open
    assert (await paper.order("default", ioc.id)).status == OrderStatus.CANCELLED.value
    assert (await paper.order("default", day.id)).status == "open"
    clock.set(next_utc_midnight_ms(T0))
    [expired] = [o for o in await paper.orders("default") if o.id == day.id]
    assert expired.status == OrderStatus.EXPIRED.value


async def test_cancel_and_owner_scoping(runtime: Runtime) -> None:
    paper = service(runtime)
    await listed(runtime, "BTCUSDT")
    order = await paper.place_order("alice", OrderSpec("BTCUSDT", Side.BUY, OrderType.LIMIT, 1.0, limit_price=1.0))
    with pytest.raises(OrderNotFound):
        await paper.cancel_order("bob", order.id)
    assert await paper.orders("bob") == []
    assert (await paper.cancel_order("alice", order.id)).status == OrderStatus.CANCELLED.value
    with pytest.raises(OrderNotOpen):
        await paper.cancel_order("alice", order.id)


async def test_plan_limits_reject_before_anything_is_stored(runtime: Runtime) -> None:
    paper = service(runtime, plan=Plan.FREE)
    await listed(runtime, "AUSDT", "BUSDT", "CUSDT", "DUSDT", price=10.0)
    for sym in ("AUSDT", "BUSDT", "CUSDT"):
        await paper.place_order("default", market(sym, Side.BUY, 1.0))
    await paper.on_candles([candle(sym, T0, 10.0) for sym in ("AUSDT", "BUSDT", "CUSDT")])
    assert len(await paper.positions("default")) == 3
    with pytest.raises(RiskRejected) as info:
        await paper.place_order("default", OrderSpec("DUSDT", Side.BUY, OrderType.LIMIT, 1.0, limit_price=10.0))
    assert info.value.rejection.reason == "max_concurrent_positions"
    assert "3 positions are already open; the plan allows 3" in info.value.rejection.message
    assert len(await paper.orders("default")) == 3  # the filled three; nothing stored for the refused one
    with pytest.raises(UnknownSymbol):  # no live price, no stored candle: not a market we know
        await paper.place_order("default", market("EUSDT", Side.BUY, 1.0))


async def test_a_resting_order_holds_no_slot_and_is_refused_at_fill_when_none_is_free(runtime: Runtime) -> None:
    paper = service(runtime, plan=Plan.FREE)
    await listed(runtime, "AUSDT", "BUSDT", "CUSDT", "DUSDT", price=10.0)
    # A GTC buy limit far below the market never fills: it must not keep the third slot for good.
    never = await paper.place_order("default", OrderSpec("DUSDT", Side.BUY, OrderType.LIMIT, 1.0, limit_price=1.0))
    for sym in ("AUSDT", "BUSDT", "CUSDT"):
        await paper.place_order("default", market(sym, Side.BUY, 1.0))
    await paper.on_candles([candle(sym, T0, 10.0) for sym in ("AUSDT", "BUSDT", "CUSDT")])
    assert len(await paper.positions("default")) == 3
    # When it finally trades, there is no slot free: the fill is refused and says why.
    await paper.on_candles([candle("DUSDT", T0 + MINUTE, 1.5, low=0.9, c=1.2)])
    refused = await paper.order("default", never.id)
    assert refused.status == OrderStatus.REJECTED.value
    assert refused.reason is not None and refused.reason.startswith("at fill: max_concurrent_positions")
    assert len(await paper.positions("default")) == 3


async def test_daily_loss_halts_until_the_next_utc_day(runtime: Runtime, clock: FakeClock) -> None:
    halts = await Collector.on(runtime.bus, topics.RISK_HALTS)
    paper = service(runtime, taker_fee_bps=0.0)
    await listed(runtime, "ETHUSDT", price=10.0)
    await paper.on_candles([candle("BTCUSDT", T0 - MINUTE, 100.0)])
    await paper.place_order("default", market("BTCUSDT", Side.BUY, 99.0))  # 9,900 notional
    await paper.on_candles([candle("BTCUSDT", T0, 100.0, c=100.0)])
    await paper.on_marks({"BTCUSDT": 94.0})  # -594 = -5.9 % of the day's 10,000
    halt = await halts.next()
    assert halt["reason"] == "daily_loss_limit" and halt["halted_until"] == next_utc_midnight_ms(T0)
    with pytest.raises(RiskRejected) as info:
        await paper.place_order("default", OrderSpec("ETHUSDT", Side.BUY, OrderType.LIMIT, 1.0, limit_price=10.0))
    assert info.value.rejection.reason == "account_halted"
    await paper.place_order("default", market("BTCUSDT", Side.SELL, 50.0))  # reducing is still allowed
    clock.set(next_utc_midnight_ms(T0) + MINUTE)
    await paper.place_order("default", OrderSpec("ETHUSDT", Side.BUY, OrderType.LIMIT, 1.0, limit_price=10.0))
    assert (await paper.account("default"))["halted"] is False


async def test_equity_at_the_maintenance_margin_liquidates_every_position(runtime: Runtime) -> None:
    halts = await Collector.on(runtime.bus, topics.RISK_HALTS)
    paper = service(runtime, leverage=5.0, daily_loss_limit_pct=0.0, taker_fee_bps=0.0)
    await paper.on_candles([candle("BTCUSDT", T0 - MINUTE, 10_000.0), candle("ETHUSDT", T0 - MINUTE, 1_000.0)])
    await paper.place_order("default", market("BTCUSDT", Side.BUY, 4.0))  # 40,000 on 10,000 at 5x
    resting = await paper.place_order("default", OrderSpec("ETHUSDT", Side.BUY, OrderType.LIMIT, 1.0,
                                                            limit_price=500.0))
    await paper.on_candles([candle("BTCUSDT", T0, 10_000.0)])
    level = liquidation_price(10_000.0, 0.0, 4.0, 10_000.0)
    assert level is not None and 7_500.0 < level < 7_600.0
    # A bar that trades through the level (without gapping) liquidates there, not at its low.
    await paper.on_candles([candle("BTCUSDT", T0 + MINUTE, 9_000.0, h=9_100.0, low=7_000.0, c=7_200.0)])
    assert await paper.positions("default") == []
    [liquidation] = [o for o in await paper.orders("default", "filled") if o.reason and "liquidated" in o.reason]
    assert liquidation.side == "sell" and liquidation.fill_price == pytest.approx(level)
    account = await paper.account("default")
    assert account["balance"] == pytest.approx(MAINTENANCE_MARGIN_RATE * 4 * level)  # what maintenance kept
    assert (await paper.order("default", resting.id)).status == OrderStatus.CANCELLED.value
    event = await halts.next()
    assert event["reason"] == "liquidation" and event["equity"] == pytest.approx(account["equity"])


async def test_a_gap_through_the_liquidation_price_never_leaves_a_negative_balance(runtime: Runtime) -> None:
    paper = service(runtime, leverage=5.0, daily_loss_limit_pct=0.0)
    await paper.on_candles([candle("BTCUSDT", T0 - MINUTE, 10_000.0)])
    await paper.place_order("default", market("BTCUSDT", Side.SELL, 4.0))  # short 40,000 at 5x
    await paper.on_candles([candle("BTCUSDT", T0, 10_000.0)])
    await paper.on_candles([candle("BTCUSDT", T0 + MINUTE, 14_000.0, c=14_500.0)])  # opens 40 % higher
    [liquidation] = [o for o in await paper.orders("default", "filled") if o.reason and "liquidated" in o.reason]
    assert liquidation.fill_price == 14_000.0  # at the open: the level was gapped through
    account = await paper.account("default")
    assert account["balance"] == 0.0 and account["equity"] == 0.0 and account["open_positions"] == 0
    with pytest.raises(RiskRejected) as info:  # nothing left to trade with
        await paper.place_order("default", market("BTCUSDT", Side.BUY, 0.001))
    assert info.value.rejection.reason == "insufficient_margin"


async def test_tickers_liquidate_between_candles(runtime: Runtime) -> None:
    paper = service(runtime, leverage=10.0, daily_loss_limit_pct=0.0, taker_fee_bps=0.0)
    await paper.on_candles([candle("BTCUSDT", T0 - MINUTE, 10_000.0)])
    await paper.place_order("default", market("BTCUSDT", Side.BUY, 9.0))  # 90,000 at 10x
    await paper.on_candles([candle("BTCUSDT", T0, 10_000.0)])
    await paper.on_marks({"BTCUSDT": 9_500.0})  # equity 5,500: above 0.5 % of 85,500
    assert len(await paper.positions("default")) == 1
    await paper.on_marks({"BTCUSDT": 8_900.0})  # equity 100 < 400.5: liquidated at the mark
    assert await paper.positions("default") == []
    account = await paper.account("default")
    assert account["balance"] == pytest.approx(10_000.0 - 9 * 1_100.0)


async def test_a_fill_that_would_breach_is_refused_at_fill_time(runtime: Runtime) -> None:
    paper = service(runtime, max_position_notional=10_000.0, maker_fee_bps=0.0)
    await paper.on_candles([candle("BTCUSDT", T0 - MINUTE, 1_000.0)])
    # A buy stop above the market, judged at its price (9 × 1,100 = 9,900): accepted.
    stop = await paper.place_order("default", OrderSpec("BTCUSDT", Side.BUY, OrderType.STOP, 9.0, stop_price=1_100.0))
    # The market gaps to 1,300: filling there would be 11,700 over a 10,000 limit, so the fill is refused.
    await paper.on_candles([candle("BTCUSDT", T0, 1_300.0)])
    refused = await paper.order("default", stop.id)
    assert refused.status == OrderStatus.REJECTED.value
    assert refused.reason == "at fill: max_position_size: the BTCUSDT position would be 11,700.00 in notional, " \
        "over the limit"
    assert await paper.positions("default") == []
