"""The risk manager: pure checks run before an order is accepted, and the daily-loss circuit breaker."""

from marketpulse.trading.risk.manager import (
    PLAN_MAX_CONCURRENT_POSITIONS,
    AccountExposure,
    OrderIntent,
    Plan,
    Rejection,
    RiskLimits,
    check_order,
    daily_loss_breached,
    limits_for_plan,
    next_utc_midnight_ms,
    utc_day_start_ms,
)

__all__ = [
    "PLAN_MAX_CONCURRENT_POSITIONS",
    "AccountExposure",
    "OrderIntent",
    "Plan",
    "Rejection",
    "RiskLimits",
    "check_order",
    "daily_loss_breached",
    "limits_for_plan",
    "next_utc_midnight_ms",
    "utc_day_start_ms",
]
