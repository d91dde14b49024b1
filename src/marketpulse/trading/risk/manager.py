"""Pre-trade and at-fill risk checks, margin, liquidation and the daily-loss circuit breaker. Pure: no I/O.

A position is one symbol in one *book*: the owner's manual trading (book "") or one deployment (its id), so a
strategy's position never nets against the owner's own trades on the same symbol.

An order is judged at the price it can actually fill at (`fill_reference`): a marketable limit or stop fills at
the market, so a sell limit at 0.01 is judged at the mark, not at 0.01. It is judged on the position it would
leave behind (held + still-open orders + this one), so stacking unfilled orders can't slip past the size limit,
and again when it fills, at the fill price (`check_order` with no pending orders): a price that moved while it
rested, a halt, or slots filled meanwhile refuse the fill. Concurrent positions count positions *held*: a
resting order takes a slot only when it fills, so a GTC limit that never fills can't hold one for good.

Margin: every position needs |notional| / leverage of the account's equity; open orders reserve theirs too (as
exchanges' "order margin" does). When equity falls to the maintenance margin (`MAINTENANCE_MARGIN_RATE` of the
notional), every position is liquidated; a loss beyond the balance (a gap through the liquidation price) is
absorbed, as an exchange's insurance fund does, so the balance never goes below zero.

Orders that only *reduce* a position are always accepted — even on a halted account — because blocking an exit
makes a loss worse, not safer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from marketpulse.accounts.plans import plan_named

DAY_MS = 86_400_000
# Binance's lowest maintenance tier is 0.4 %; 0.5 % also covers the taker fee of closing at that price.
MAINTENANCE_MARGIN_RATE = 0.005

MANUAL = ""  # the book of the owner's own orders; a deployment's book is its id
PositionKey = tuple[str, str]  # (symbol, book)


class Plan(StrEnum):
    FREE = "free"
    PRO = "pro"
    PREMIUM = "premium"
    ENTERPRISE = "enterprise"


# Limits come from the one plan table (`marketpulse.accounts.plans`); "premium" there is elite's other name.
PLAN_MAX_CONCURRENT_POSITIONS: dict[Plan, int | None] = {
    p: plan_named(p.value).concurrent_paper_positions for p in Plan
}


@dataclass(frozen=True)
class RiskLimits:
    max_concurrent_positions: int | None  # None: unlimited
    max_position_notional: float  # |position| × price after the order, in quote currency
    daily_loss_limit_pct: float  # fraction of the UTC day's starting equity; 0 disables the breaker
    leverage: float = 1.0  # positions need notional / leverage of equity as margin


def limits_for_plan(
    plan: str, *, max_position_notional: float, daily_loss_limit_pct: float, leverage: float = 1.0
) -> RiskLimits:
    """The risk limits of a plan named in the plan table (any of its names, `Plan` members included)."""
    return RiskLimits(plan_named(plan).concurrent_paper_positions, max_position_notional, daily_loss_limit_pct,
                      leverage)


@dataclass(frozen=True)
class OrderIntent:
    symbol: str
    signed_quantity: float  # + buys, - sells
    reference_price: float  # the price it can fill at (`fill_reference`), or the fill price at fill time
    book: str = MANUAL

    @property
    def key(self) -> PositionKey:
        return (self.symbol, self.book)


@dataclass(frozen=True)
class AccountExposure:
    positions: Mapping[PositionKey, float]  # signed quantity held per position
    pending: Mapping[PositionKey, float]  # signed quantity of open orders not filled yet
    halted_until_ms: int | None = None
    equity: float = math.inf  # balance + unrealized P&L at the marks; the margin check's budget
    marks: Mapping[str, float] = field(default_factory=dict)  # symbol → price the other positions are valued at


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


def money(v: float) -> str:
    """A number as the paper page shows it: thousands separators, two decimals."""
    return f"{v:,.2f}"


def fill_reference(side_sign: int, order_type: str, trigger: float | None, mark: float) -> float:
    """The price an order can fill at: the mark when it is marketable now (it fills at the market, whatever its
    own price says), else its limit/stop price."""
    if trigger is None or order_type == "market":
        return mark
    return mark if is_marketable(side_sign, order_type, trigger, mark) else trigger


def is_marketable(side_sign: int, order_type: str, trigger: float, mark: float) -> bool:
    """A buy limit at or above the market (a sell limit at or below) trades at once; stops mirror limits."""
    at_or_above = (side_sign > 0) == (order_type == "limit")
    return trigger >= mark if at_or_above else trigger <= mark


def check_order(limits: RiskLimits, exposure: AccountExposure, order: OrderIntent, now_ms: int) -> Rejection | None:
    """None when the order (or, with no pending orders, a fill) may go ahead, else the first limit it breaks."""
    key = order.key
    current = exposure.positions.get(key, 0.0) + exposure.pending.get(key, 0.0)
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
            f"the {order.symbol} position would be {money(notional)} in notional, over the limit",
            limit=limits.max_position_notional,
            value=notional,
        )
    return _check_margin(limits, exposure, key, notional) or _check_concurrent(limits, exposure, key)


def _check_margin(limits: RiskLimits, exposure: AccountExposure, key: PositionKey, notional: float) -> Rejection | None:
    required = (notional + _other_notional(exposure, key)) / limits.leverage
    if required <= exposure.equity:
        return None
    return Rejection(
        "insufficient_margin",
        f"positions and open orders would need {money(required)} of margin at {limits.leverage:g}x leverage; "
        f"equity is {money(exposure.equity)}",
        limit=exposure.equity,
        value=required,
    )


def _other_notional(exposure: AccountExposure, key: PositionKey) -> float:
    keys = (set(exposure.positions) | set(exposure.pending)) - {key}
    return sum(
        abs(exposure.positions.get(k, 0.0) + exposure.pending.get(k, 0.0)) * exposure.marks.get(k[0], 0.0)
        for k in keys
    )


def _check_concurrent(limits: RiskLimits, exposure: AccountExposure, key: PositionKey) -> Rejection | None:
    if limits.max_concurrent_positions is None or exposure.positions.get(key, 0.0) != 0.0:
        return None  # adding to a held position doesn't open a new one
    held = sum(1 for k, q in exposure.positions.items() if q != 0.0 and k != key)
    if held >= limits.max_concurrent_positions:
        return Rejection(
            "max_concurrent_positions",
            f"{held:,} positions are already open; the plan allows {limits.max_concurrent_positions:,}",
            limit=limits.max_concurrent_positions,
            value=held,
        )
    return None


def _reduces(current: float, projected: float) -> bool:
    """True when the order moves the position toward flat without flipping it."""
    if current == 0.0:
        return False
    same_side = projected == 0.0 or math.copysign(1, projected) == math.copysign(1, current)
    return abs(projected) < abs(current) and same_side


def liquidation_due(equity: float, notional: float) -> bool:
    """True when equity has fallen to the maintenance margin of the positions held, or below zero at all (an exit
    filled beyond the liquidation price: the rule still applies, absorbing the loss beyond the balance)."""
    return equity < 0.0 or (notional > 0.0 and equity <= MAINTENANCE_MARGIN_RATE * notional)


def liquidation_price(equity: float, other_notional: float, quantity: float, mark: float) -> float | None:
    """The price of one symbol (net `quantity` held, valued at `mark` in `equity`) at which equity meets the
    maintenance margin, the other positions held at their marks; None when no positive price does."""
    # equity + quantity·(p − mark) = rate·(other_notional + |quantity|·p), solved for p.
    rate = MAINTENANCE_MARGIN_RATE
    denominator = quantity - rate * abs(quantity)
    if denominator == 0.0:
        return None
    price = (rate * other_notional - equity + quantity * mark) / denominator
    return price if price > 0.0 else None


def daily_loss_breached(limits: RiskLimits, day_start_equity: float, equity: float) -> bool:
    if limits.daily_loss_limit_pct <= 0 or day_start_equity <= 0:
        return False
    return equity <= day_start_equity * (1.0 - limits.daily_loss_limit_pct)


def utc_day_start_ms(now_ms: int) -> int:
    return now_ms - now_ms % DAY_MS


def next_utc_midnight_ms(now_ms: int) -> int:
    return utc_day_start_ms(now_ms) + DAY_MS
