"""The risk manager's pure checks: each limit, margin, the fillable price, exits always allowed, liquidation and
the daily-loss breaker's arithmetic."""

from __future__ import annotations

import pytest

from marketpulse.trading.risk import (
    MAINTENANCE_MARGIN_RATE,
    AccountExposure,
    OrderIntent,
    Plan,
    RiskLimits,
    check_order,
    daily_loss_breached,
    fill_reference,
    limits_for_plan,
    liquidation_due,
    liquidation_price,
    money,
    next_utc_midnight_ms,
)

NOW = 1_760_126_400_000  # 2025-10-10 20:00 UTC
LIMITS = RiskLimits(max_concurrent_positions=2, max_position_notional=10_000.0, daily_loss_limit_pct=0.05)


def k(symbol: str, book: str = "") -> tuple[str, str]:
    return (symbol, book)


def exposure(positions: dict[str, float] | None = None, pending: dict[str, float] | None = None,
             halted_until: int | None = None, equity: float = 1e12,
             marks: dict[str, float] | None = None) -> AccountExposure:
    return AccountExposure({k(s): q for s, q in (positions or {}).items()},
                           {k(s): q for s, q in (pending or {}).items()}, halted_until, equity, marks or {})


def test_plans_carry_the_seed_limits() -> None:
    assert limits_for_plan(Plan.PRO, max_position_notional=1, daily_loss_limit_pct=0).max_concurrent_positions == 10
    assert limits_for_plan(Plan.PREMIUM, max_position_notional=1, daily_loss_limit_pct=0).max_concurrent_positions == 50
    assert limits_for_plan(Plan.FREE, max_position_notional=1, daily_loss_limit_pct=0).max_concurrent_positions == 3
    assert limits_for_plan(Plan.ENTERPRISE, max_position_notional=1,
                           daily_loss_limit_pct=0).max_concurrent_positions is None


def test_position_size_counts_the_held_position_and_open_orders() -> None:
    ok = check_order(LIMITS, exposure({"BTCUSDT": 0.05}), OrderIntent("BTCUSDT", 0.04, 100_000.0), NOW)
    assert ok is None  # 0.09 BTC = 9,000
    over = check_order(LIMITS, exposure({"BTCUSDT": 0.05}, {"BTCUSDT": 0.03}),
                       OrderIntent("BTCUSDT", 0.04, 100_000.0), NOW)
    assert over is not None and over.reason == "max_position_size"
    assert over.limit == 10_000.0 and over.value is not None and abs(over.value - 12_000.0) < 1e-6
    assert "12,000.00 in notional" in over.message  # formatted as the page formats money


def test_orders_are_judged_at_the_price_they_can_fill_at() -> None:
    # The bypass: a sell limit at 0.01 and a buy stop at 0.01 are marketable, so they fill at the market.
    assert fill_reference(-1, "limit", 0.01, 3_580.0) == 3_580.0
    assert fill_reference(+1, "stop", 0.01, 200.0) == 200.0
    sell = check_order(LIMITS, exposure(), OrderIntent("ETHUSDT", -100.0, fill_reference(-1, "limit", 0.01, 3_580.0)),
                       NOW)
    assert sell is not None and sell.reason == "max_position_size" and sell.value == pytest.approx(358_000.0)
    # Resting orders are judged at their own price: it is where they fill.
    assert fill_reference(+1, "limit", 90.0, 100.0) == 90.0
    assert fill_reference(+1, "stop", 110.0, 100.0) == 110.0
    assert fill_reference(-1, "limit", 110.0, 100.0) == 110.0
    assert fill_reference(-1, "stop", 90.0, 100.0) == 90.0
    assert fill_reference(+1, "limit", 150.0, 100.0) == 100.0  # marketable buy limit: the market
    assert fill_reference(+1, "market", None, 100.0) == 100.0


def test_margin_bounds_total_notional_by_equity_times_leverage() -> None:
    roomy = RiskLimits(None, 1e9, 0.0, leverage=1.0)
    held = exposure({f"S{i}USDT": 1.0 for i in range(9)}, equity=10_000.0,
                    marks={f"S{i}USDT": 1_000.0 for i in range(9)})  # 9,000 of notional on 10,000
    assert check_order(roomy, held, OrderIntent("XUSDT", 1.0, 1_000.0), NOW) is None  # exactly 10,000
    over = check_order(roomy, held, OrderIntent("XUSDT", 1.1, 1_000.0), NOW)
    assert over is not None and over.reason == "insufficient_margin"
    assert over.value == pytest.approx(10_100.0) and over.limit == 10_000.0
    assert "10,100.00 of margin at 1x leverage; equity is 10,000.00" in over.message
    levered = RiskLimits(None, 1e9, 0.0, leverage=10.0)
    assert check_order(levered, held, OrderIntent("XUSDT", 91.0, 1_000.0), NOW) is None  # 100,000 / 10
    assert check_order(levered, held, OrderIntent("XUSDT", 92.0, 1_000.0), NOW) is not None
    # Open orders reserve margin too; an exit needs none, even with no equity left.
    pending = exposure(pending={"AUSDT": 9.0}, equity=10_000.0, marks={"AUSDT": 1_000.0})
    assert check_order(roomy, pending, OrderIntent("BUSDT", 2.0, 1_000.0), NOW) is not None
    broke = exposure({"AUSDT": 1.0}, equity=-5.0, marks={"AUSDT": 1_000.0})
    assert check_order(roomy, broke, OrderIntent("AUSDT", -1.0, 1_000.0), NOW) is None


def test_concurrent_positions_count_held_positions_not_resting_orders() -> None:
    held = exposure({"BTCUSDT": 0.01, "ETHUSDT": 1.0})
    new = check_order(LIMITS, held, OrderIntent("SOLUSDT", 1.0, 100.0), NOW)
    assert new is not None and new.reason == "max_concurrent_positions"
    assert new.detail()["limit"] == 2 and new.detail()["value"] == 2
    assert check_order(LIMITS, held, OrderIntent("BTCUSDT", 0.01, 100_000.0), NOW) is None  # adding
    # A resting order that never fills holds no slot: the check at fill time guards the slot instead.
    resting = exposure({"BTCUSDT": 0.01}, {"ETHUSDT": 1.0, "XRPUSDT": 5.0})
    assert check_order(LIMITS, resting, OrderIntent("SOLUSDT", 1.0, 100.0), NOW) is None


def test_a_deployments_position_is_its_own() -> None:
    # The owner's manual long and a deployment's long on one symbol are two positions, each judged on its own.
    two = AccountExposure({k("BTCUSDT"): 0.05, k("BTCUSDT", "dep-1"): 0.05}, {}, None, 1e12, {"BTCUSDT": 100_000.0})
    assert check_order(LIMITS, two, OrderIntent("BTCUSDT", 0.04, 100_000.0, "dep-1"), NOW) is None
    assert check_order(LIMITS, two, OrderIntent("ETHUSDT", 1.0, 100.0), NOW) is not None  # two slots taken
    # A sell in the manual book doesn't "reduce" the deployment's long: it opens a short in its own book.
    short = check_order(LIMITS, two, OrderIntent("BTCUSDT", -0.2, 100_000.0, "dep-2"), NOW)
    assert short is not None and short.reason == "max_position_size"


def test_a_halt_blocks_new_exposure_until_it_ends_but_never_an_exit() -> None:
    until = next_utc_midnight_ms(NOW)
    halted = exposure({"BTCUSDT": 0.05}, halted_until=until)
    blocked = check_order(LIMITS, halted, OrderIntent("ETHUSDT", 1.0, 100.0), NOW)
    assert blocked is not None and blocked.reason == "account_halted"
    assert check_order(LIMITS, halted, OrderIntent("BTCUSDT", -0.05, 100_000.0), NOW) is None  # full exit
    assert check_order(LIMITS, halted, OrderIntent("BTCUSDT", -0.02, 100_000.0), NOW) is None  # partial
    flip = check_order(LIMITS, halted, OrderIntent("BTCUSDT", -0.08, 100_000.0), NOW)
    assert flip is not None and flip.reason == "account_halted"  # flipping short is new exposure
    assert check_order(LIMITS, halted, OrderIntent("ETHUSDT", 1.0, 100.0), until) is None  # next UTC day


def test_exits_pass_every_limit() -> None:
    tight = RiskLimits(max_concurrent_positions=0, max_position_notional=1.0, daily_loss_limit_pct=0.05)
    assert check_order(tight, exposure({"BTCUSDT": 1.0}), OrderIntent("BTCUSDT", -1.0, 100_000.0), NOW) is None


def test_liquidation_price_is_where_equity_meets_the_maintenance_margin() -> None:
    # A 10,000 short on 10,000 of equity: equity(p) = 10,000 − (p − 10,000) meets 0.5 % of p's notional at 19,900.5.
    level = liquidation_price(10_000.0, 0.0, -1.0, 10_000.0)
    assert level == pytest.approx(19_900.497, rel=1e-6)
    assert level is not None
    assert 10_000.0 - (level - 10_000.0) == pytest.approx(MAINTENANCE_MARGIN_RATE * level)
    # A 1x long can't be liquidated by any positive price: its equity stays above its notional's margin.
    assert liquidation_price(10_000.0, 0.0, 1.0, 10_000.0) is None
    # 5x long: 50,000 notional on 10,000 → liquidated near an 19.6 % drop.
    level = liquidation_price(10_000.0, 0.0, 5.0, 10_000.0)
    assert level is not None and 10_000.0 + 5 * (level - 10_000.0) == pytest.approx(MAINTENANCE_MARGIN_RATE * 5 * level)
    assert liquidation_due(0.0, 1.0) and not liquidation_due(100.0, 1_000.0) and not liquidation_due(0.0, 0.0)
    assert liquidation_due(-1.0, 0.0)  # an exit filled beyond the liquidation price: the loss is absorbed


def test_daily_loss_breaker() -> None:
    assert not daily_loss_breached(LIMITS, 10_000.0, 9_501.0)
    assert daily_loss_breached(LIMITS, 10_000.0, 9_500.0)
    off = RiskLimits(None, 1e9, 0.0)
    assert not daily_loss_breached(off, 10_000.0, 1.0)


def test_money_is_formatted_as_the_page_does() -> None:
    assert money(1_234_567.891) == "1,234,567.89" and money(-3_500.0) == "-3,500.00" and money(0.004) == "0.00"


def test_next_utc_midnight() -> None:
    assert next_utc_midnight_ms(NOW) == 1_760_140_800_000  # 2025-10-11 00:00 UTC
    assert next_utc_midnight_ms(1_760_140_800_000) == 1_760_140_800_000 + 86_400_000
