"""The risk manager's pure checks: each limit, exits always allowed, and the daily-loss breaker's arithmetic."""

from __future__ import annotations

from marketpulse.trading.risk import (
    AccountExposure,
    OrderIntent,
    Plan,
    RiskLimits,
    check_order,
    daily_loss_breached,
    limits_for_plan,
    next_utc_midnight_ms,
)

NOW = 1_760_126_400_000  # 2025-10-10 20:00 UTC
LIMITS = RiskLimits(max_concurrent_positions=2, max_position_notional=10_000.0, daily_loss_limit_pct=0.05)


def exposure(positions: dict[str, float] | None = None, pending: dict[str, float] | None = None,
             halted_until: int | None = None) -> AccountExposure:
    return AccountExposure(positions or {}, pending or {}, halted_until)


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


def test_concurrent_positions_block_a_new_symbol_but_not_adding_to_one() -> None:
    held = exposure({"BTCUSDT": 0.01}, {"ETHUSDT": 1.0})  # an open order counts: it would open a position
    new = check_order(LIMITS, held, OrderIntent("SOLUSDT", 1.0, 100.0), NOW)
    assert new is not None and new.reason == "max_concurrent_positions"
    assert new.detail()["limit"] == 2 and new.detail()["value"] == 2
    assert check_order(LIMITS, held, OrderIntent("BTCUSDT", 0.01, 100_000.0), NOW) is None


def test_flat_symbols_do_not_count() -> None:
    # A sell order pending against a long of the same size nets to flat: that symbol frees its slot.
    held = exposure({"BTCUSDT": 0.01, "ETHUSDT": 1.0}, {"ETHUSDT": -1.0})
    assert check_order(LIMITS, held, OrderIntent("SOLUSDT", 1.0, 100.0), NOW) is None


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


def test_daily_loss_breaker() -> None:
    assert not daily_loss_breached(LIMITS, 10_000.0, 9_501.0)
    assert daily_loss_breached(LIMITS, 10_000.0, 9_500.0)
    off = RiskLimits(None, 1e9, 0.0)
    assert not daily_loss_breached(off, 10_000.0, 1.0)


def test_next_utc_midnight() -> None:
    assert next_utc_midnight_ms(NOW) == 1_760_140_800_000  # 2025-10-11 00:00 UTC
    assert next_utc_midnight_ms(1_760_140_800_000) == 1_760_140_800_000 + 86_400_000
