"""When and at what price a paper order fills on one closed bar — the backtest engine's rules, called, not copied.

Limit and stop prices come from the engine core's own compiled rule (`core.resting_fill_price`): a gap through
the level fills at the open, otherwise the level. Market orders fill at the open with slippage against the
trader (`core._fill_market_orders`' formula, which needs the engine's whole state to call, so it is restated
here in one line). IOC follows the engine too: it must be marketable at the bar's open or it is cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketpulse.backtest import core
from marketpulse.trading.paper.orders import OrderType, Side, TimeInForce


@dataclass(frozen=True)
class Bar:
    open_time: int
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class FillQuote:
    price: float
    taker: bool  # market and triggered stop orders take liquidity; resting limits make it


_ENGINE_TYPE = {OrderType.LIMIT: core.ORDER_LIMIT, OrderType.STOP: core.ORDER_STOP}


def match(
    order_type: OrderType, side: Side, trigger: float | None, tif: TimeInForce, bar: Bar, slippage_bps: float
) -> FillQuote | None:
    """The fill this bar gives an order, or None when it keeps waiting (or, for IOC, is done)."""
    slip = slippage_bps / 10_000.0
    if order_type is OrderType.MARKET:
        return FillQuote(bar.open * (1.0 + side.sign * slip), taker=True)
    assert trigger is not None  # OrderSpec guarantees a price for limit and stop orders
    if tif is TimeInForce.IOC and not _marketable_at_open(order_type, side, trigger, bar.open):
        return None
    row = np.zeros(core.N_ORDER)
    row[core.O_SIDE], row[core.O_TYPE], row[core.O_PRICE] = side.sign, _ENGINE_TYPE[order_type], trigger
    price = float(core.resting_fill_price(row, bar.open, bar.high, bar.low, slip))
    return None if np.isnan(price) else FillQuote(price, taker=order_type is OrderType.STOP)


def _marketable_at_open(order_type: OrderType, side: Side, trigger: float, open_: float) -> bool:
    # A buy limit (or sell stop) is marketable when the open is at or below its price; the others mirror it.
    at_or_below = (side is Side.BUY) == (order_type is OrderType.LIMIT)
    return open_ <= trigger if at_or_below else open_ >= trigger


def fee_for(notional: float, taker: bool, taker_fee_bps: float, maker_fee_bps: float) -> float:
    return abs(notional) * (taker_fee_bps if taker else maker_fee_bps) / 10_000.0
