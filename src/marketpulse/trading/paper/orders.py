"""Paper orders: kinds, time in force, and the rules for when an order is live. Pure: no I/O, time passed in.

An order is eligible for bars that *open* at or after `active_from_ms`: a bar that was already running when
the order arrived has partly happened in the past, and filling on it would be look-ahead. A market order
therefore fills at the next bar's open — the backtester's rule for signals computed on a close.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from marketpulse.trading.risk.manager import next_utc_midnight_ms


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class TimeInForce(StrEnum):
    GTC = "gtc"  # until filled or cancelled
    DAY = "day"  # until the end of the UTC day it was placed on (crypto trades round the clock)
    IOC = "ioc"  # the first eligible bar only; whatever doesn't fill there is cancelled


class OrderStatus(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OrderSpec:
    """What was asked for, validated: prices present exactly where the order type needs them."""

    symbol: str
    side: Side
    type: OrderType
    quantity: float
    time_in_force: TimeInForce = TimeInForce.GTC
    limit_price: float | None = None
    stop_price: float | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError("quantity must be positive")
        if (self.type is OrderType.LIMIT) != (self.limit_price is not None):
            raise ValueError("limit_price is required for limit orders and only for them")
        if (self.type is OrderType.STOP) != (self.stop_price is not None):
            raise ValueError("stop_price is required for stop orders and only for them")

    @property
    def signed_quantity(self) -> float:
        return self.side.sign * self.quantity

    @property
    def trigger_price(self) -> float | None:
        return self.limit_price if self.type is OrderType.LIMIT else self.stop_price


def expires_at_ms(tif: TimeInForce, placed_at_ms: int) -> int | None:
    """When a resting order stops being live; IOC is handled by the matcher (one bar), GTC never expires."""
    return next_utc_midnight_ms(placed_at_ms) if tif is TimeInForce.DAY else None


def is_expired(expires_at: int | None, bar_open_ms: int) -> bool:
    return expires_at is not None and bar_open_ms >= expires_at
