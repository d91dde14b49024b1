"""Pre-trade risk checks and the daily-loss circuit breaker. Pure: no I/O, time passed in.

An order is judged on the position it would leave behind (held + still-open orders + this one), so a user
can't slip past a limit by stacking orders that are not yet filled. Orders that only *reduce* exposure are
always accepted — even on a halted account — because blocking an exit makes a loss worse, not safer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DAY_MS = 86_400_000


class Plan(StrEnum):
    FREE = "free"
    PRO = "pro"
    PREMIUM = "premium"
    ENTERPRISE = "enterprise"


# The seed's tiers: pro 10 concurrent trades, premium 50, enterprise "unlimited everything".
# Free has no live trading in the seed; for *paper* we allow 3 — enough to learn with one deployment and a
# couple of manual trades, in line with the free tier's 3 backtests a day.
PLAN_MAX_CONCURRENT_POSITIONS: dict[Plan, int | None] = {
    Plan.FREE: 3,
    Plan.PRO: 10,
    Plan.PREMIUM: 50,
    Plan.ENTERPRISE: None,
}


@dataclass(frozen=True)
class RiskLimits:
    max_concurrent_positions: int | None  # None: unlimited
    max_position_notional: float  # |position| × price after the order, in quote currency
    daily_loss_limit_pct: float  # fraction of the UTC day's starting equity; 0 disables the breaker


def limits_for_plan(plan: Plan, *, max_position_notional: float, daily_loss_limit_pct: float) -> RiskLimits:
    return RiskLimits(PLAN_MAX_CONCURRENT_POSITIONS[plan], max_position_notional, daily_loss_limit_pct)


@dataclass(frozen=True)
class OrderIntent:
    symbol: str
    signed_quantity: float  # + buys, - sells
    reference_price: float  # the price the order is judged at: its limit/stop price, else the last mark


@dataclass(frozen=True)
class AccountExposure:
    positions: Mapping[str, float]  # symbol → signed quantity held
    pending: Mapping[str, float]  # symbol → signed quantity of open orders not filled yet
    halted_until_ms: int | None = None


@dataclass(frozen=True)
class Rejection:
    reason: str  # stable machine-readable code, e.g. "max_concurrent_positions"
    message: str
    limit: float | None = None
    value: float | None = None

    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "message": self.message}
        if self.limit is not None:
            out["limit"] = self.limit
        if self.value is not None:
            out["value"] = self.value
        return out


def check_order(limits: RiskLimits, exposure: AccountExposure, order: OrderIntent, now_ms: int) -> Rejection | None:
    """None when the order may be accepted, else the first limit it breaks."""
    current = exposure.positions.get(order.symbol, 0.0) + exposure.pending.get(order.symbol, 0.0)
    projected = current + order.signed_quantity
    if _reduces(current, projected):
        return None
    if exposure.halted_until_ms is not None and now_ms < exposure.halted_until_ms:
        return Rejection(
            "account_halted",
            "daily loss limit reached: new exposure is blocked until the next UTC day; closing is allowed",
            value=float(exposure.halted_until_ms),
        )
    notional = abs(projected) * order.reference_price
    if notional > limits.max_position_notional:
        return Rejection(
            "max_position_size",
            f"the {order.symbol} position would be {notional:.2f} in notional, over the limit",
            limit=limits.max_position_notional,
            value=notional,
        )
    return _check_concurrent(limits, exposure, order.symbol, current)


def _check_concurrent(limits: RiskLimits, exposure: AccountExposure, symbol: str, current: float) -> Rejection | None:
    if limits.max_concurrent_positions is None or current != 0.0:
        return None  # adding to an existing position doesn't open a new one
    open_symbols = _open_symbols(exposure) - {symbol}
    if len(open_symbols) >= limits.max_concurrent_positions:
        return Rejection(
            "max_concurrent_positions",
            f"{len(open_symbols)} positions (or orders that would open one) are already open; the plan allows "
            f"{limits.max_concurrent_positions}",
            limit=limits.max_concurrent_positions,
            value=len(open_symbols),
        )
    return None


def _open_symbols(exposure: AccountExposure) -> set[str]:
    symbols = set(exposure.positions) | set(exposure.pending)
    return {s for s in symbols if exposure.positions.get(s, 0.0) + exposure.pending.get(s, 0.0) != 0.0}


def _reduces(current: float, projected: float) -> bool:
    """True when the order moves the position toward flat without flipping it."""
    if current == 0.0:
        return False
    same_side = projected == 0.0 or math.copysign(1, projected) == math.copysign(1, current)
    return abs(projected) < abs(current) and same_side


def daily_loss_breached(limits: RiskLimits, day_start_equity: float, equity: float) -> bool:
    if limits.daily_loss_limit_pct <= 0 or day_start_equity <= 0:
        return False
    return equity <= day_start_equity * (1.0 - limits.daily_loss_limit_pct)


def utc_day_start_ms(now_ms: int) -> int:
    return now_ms - now_ms % DAY_MS


def next_utc_midnight_ms(now_ms: int) -> int:
    return utc_day_start_ms(now_ms) + DAY_MS
