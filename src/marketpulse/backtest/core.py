"""The engine core: one step function over explicit state, shared by backtests and paper trading.

Everything here is ``@njit`` over plain float64 arrays so the vectorized backtest loop (``run_bars``) and a
bar-by-bar caller (``marketpulse.backtest.engine.Engine``, used by paper trading) execute the *same* compiled code:
same inputs, same trades, bit for bit.

State lives in three arrays the caller owns:

* ``state``  — ``float64[N_STATE]``: account, position, protective levels and streaming statistics (``S_*``).
* ``orders`` — ``float64[MAX_ORDERS, N_ORDER]``: the working orders (``O_*``), filled in submission order.
* ``log``    — ``float64[capacity, N_TRADE]``: closed trades (``T_*``); ``state[S_LOGGED]`` rows are used.

``cfg`` — ``float64[N_CFG]`` (``C_*``) holds the run's constant settings (fees, slippage, sizing, stops, leverage).

One bar, in this order (``process_bar``):

1. funding at the open (``funding_rate`` for this bar; longs pay a positive rate, shorts receive it);
2. market orders fill at the open (slippage against the trader, taker fee);
3. protective exits of the open position, judged on the bar's range. A bar cannot say whether its high or low
   came first, so the rule is *conservative*: the adverse side (liquidation, stop-loss, trailing stop — whichever
   the price meets first on its way down for a long) is assumed to trade before the favourable one (take-profit).
   A gap through a level fills at the open;
4. resting limit and stop orders touched by the bar's range fill (limit at its price or a better open, maker fee;
   stop at its price or a worse open, plus slippage, taker fee). A position opened here gets its protective
   exits from the *next* bar, since the bar's path after the fill is unknown;
5. unfilled ``ioc`` orders are cancelled (``day`` orders die when a bar of a later UTC day opens, before step 2);
6. the trailing-stop watermark absorbs the bar's extreme, equity is marked at the close and the statistics updated.

``process_bar`` = ``fill_bar`` (steps 1-6) + ``stats_step`` on the statistics accumulators kept in ``state``. The
backtest loop calls ``fill_bar`` and keeps the accumulators in local variables instead (the same pure
``stats_step``, so the same numbers): held in ``state`` they cost half of a million-bar run. It also skips
``fill_bar`` on bars where the account is flat with no working order, which provably cannot change anything but
the bar count (tests compare the statistics of both paths for exact equality).

After the close, the caller turns the bar's signals into market orders for the next open (``apply_signals``) or
submits its own orders (``submit_order``). Signals therefore can never use a price they are filled at.

The account is margin-style: ``cash`` is the balance (realized P&L, fees, funding), a position holds
``units`` (signed) at ``entry_price``; equity = cash + units * (price - entry_price). One net position at a time
(no pyramiding): an ``open`` order on the side already held is cancelled, an ``open`` order on the opposite side
closes the position first and then opens the new one (a flip). Liquidation (isolated margin, only when
``maint_margin > 0``): the position's margin ``|units| * entry / leverage`` is lost when the mark reaches
``entry * (1 - 1/L) / (1 - mm)`` for a long or ``entry * (1 + 1/L) / (1 + mm)`` for a short.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]

# --- cfg fields -----------------------------------------------------------------------------------------------
C_TAKER_FEE = 0  # fraction (bps / 1e4)
C_MAKER_FEE = 1
C_SLIPPAGE = 2  # fraction, applied against the trader on market/stop fills
C_SIZE = 3  # fraction of equity committed as margin per entry
C_UNITS = 4  # fixed units per entry when > 0 (overrides C_SIZE)
C_STOP_LOSS = 5  # fraction from entry, 0 = off
C_TAKE_PROFIT = 6
C_TRAILING = 7  # fraction from the best price since entry, 0 = off
C_LEVERAGE = 8
C_MAINT_MARGIN = 9  # 0 = no liquidation
C_LONG_ONLY = 10
N_CFG = 11

# --- state fields ---------------------------------------------------------------------------------------------
S_CASH = 0
S_UNITS = 1  # signed position size
S_ENTRY_PRICE = 2
S_ENTRY_TIME = 3
S_ENTRY_FEES = 4  # fees paid to open the current position
S_FUNDING = 5  # funding paid by the current position so far
S_STOP_PRICE = 6  # stop-loss level, NaN = none
S_TAKE_PRICE = 7
S_WATERMARK = 8  # best price since entry (trailing stop), NaN = none
S_LIQ_PRICE = 9
S_MARGIN = 10
S_INITIAL_CASH = 11
# Return statistics (the `Acc` tuple of stats_step, in this order):
S_EQUITY = 12  # equity at the last close
S_SUM_RET = 13
S_SUM_RET2 = 14
S_SUM_DOWN2 = 15
S_PEAK_EQUITY = 16
S_MAX_DRAWDOWN = 17  # fraction, positive
S_BARS = 18
S_BARS_IN_MARKET = 19
# Trade statistics:
S_TRADES = 20
S_WINS = 21
S_GROSS_PROFIT = 22
S_GROSS_LOSS = 23
S_LOGGED = 24  # rows used in the trade log
S_DROPPED = 25  # trades not logged because the log was full (statistics still count them)
S_FEES_TOTAL = 26
S_FUNDING_TOTAL = 27
S_NEXT_ORDER_ID = 28
S_WORKING_ORDERS = 29  # active rows in `orders`, so bars without orders skip the order scans
N_STATE = 30

# --- order fields ---------------------------------------------------------------------------------------------
O_ACTIVE = 0
O_SIDE = 1  # +1 buy, -1 sell
O_TYPE = 2  # ORDER_MARKET / ORDER_LIMIT / ORDER_STOP
O_PRICE = 3
O_UNITS = 4  # > 0 fixed units; 0 = size from cfg at fill time
O_TIF = 5  # TIF_GTC / TIF_IOC / TIF_DAY
O_EXPIRES = 6  # epoch ms (day orders), +inf otherwise
O_ACTION = 7  # ACTION_OPEN / ACTION_CLOSE
O_ID = 8
O_SUBMITTED = 9  # epoch ms of the close it was submitted after
N_ORDER = 10
MAX_ORDERS = 16

ORDER_MARKET = 0
ORDER_LIMIT = 1
ORDER_STOP = 2
TIF_GTC = 0
TIF_IOC = 1
TIF_DAY = 2
ACTION_OPEN = 0
ACTION_CLOSE = 1

# --- trade log fields -----------------------------------------------------------------------------------------
T_SIDE = 0  # +1 long, -1 short
T_ENTRY_TIME = 1
T_EXIT_TIME = 2
T_ENTRY_PRICE = 3
T_EXIT_PRICE = 4
T_UNITS = 5  # positive
T_PNL = 6  # net of fees and funding
T_FEES = 7
T_FUNDING = 8
T_REASON = 9
N_TRADE = 10

EXIT_ORDER = 0  # signal or explicit order
EXIT_STOP_LOSS = 1
EXIT_TAKE_PROFIT = 2
EXIT_TRAILING = 3
EXIT_LIQUIDATION = 4
EXIT_REASONS = ("order", "stop_loss", "take_profit", "trailing_stop", "liquidation")

DAY_MS = 86_400_000

_Fn = TypeVar("_Fn", bound=Callable[..., Any])
# No numba runtime (_nrt=False): the core allocates nothing, and without it every array handed to a compiled helper
# skips atomic reference counting, which otherwise costs more than a quiet bar's whole work.
# The per-bar hot path is inlined into its callers ("always") so the quiet bar makes no calls at all.
_KERNEL: dict[str, Any] = {"cache": True, "_nrt": False, "nogil": True}  # nogil: sweeps run on threads
kernel: Callable[[_Fn], _Fn] = njit(**_KERNEL)
inline_kernel: Callable[[_Fn], _Fn] = njit(inline="always", **_KERNEL)


def new_state(cash: float) -> F64:
    state = np.zeros(N_STATE)
    state[S_CASH] = cash
    state[S_INITIAL_CASH] = cash
    state[S_PEAK_EQUITY] = cash
    state[S_EQUITY] = cash
    _clear_position(state)
    return state


def new_orders() -> F64:
    return np.zeros((MAX_ORDERS, N_ORDER))


def new_cfg(
    *, taker_fee_bps: float = 0.0, maker_fee_bps: float = 0.0, slippage_bps: float = 0.0, size: float = 1.0,
    units: float = 0.0, stop_loss: float = 0.0, take_profit: float = 0.0, trailing_stop: float = 0.0,
    leverage: float = 1.0, maint_margin: float = 0.0, long_only: bool = False,
) -> F64:
    cfg = np.zeros(N_CFG)
    cfg[C_TAKER_FEE] = taker_fee_bps / 1e4
    cfg[C_MAKER_FEE] = maker_fee_bps / 1e4
    cfg[C_SLIPPAGE] = slippage_bps / 1e4
    cfg[C_SIZE] = size
    cfg[C_UNITS] = units
    cfg[C_STOP_LOSS] = stop_loss
    cfg[C_TAKE_PROFIT] = take_profit
    cfg[C_TRAILING] = trailing_stop
    cfg[C_LEVERAGE] = leverage
    cfg[C_MAINT_MARGIN] = maint_margin
    cfg[C_LONG_ONLY] = 1.0 if long_only else 0.0
    return cfg


# --- position bookkeeping -------------------------------------------------------------------------------------
@kernel
def _clear_position(state: F64) -> None:
    state[S_UNITS] = 0.0
    state[S_ENTRY_PRICE] = np.nan
    state[S_ENTRY_TIME] = np.nan
    state[S_ENTRY_FEES] = 0.0
    state[S_FUNDING] = 0.0
    state[S_STOP_PRICE] = np.nan
    state[S_TAKE_PRICE] = np.nan
    state[S_WATERMARK] = np.nan
    state[S_LIQ_PRICE] = np.nan
    state[S_MARGIN] = 0.0


@kernel
def _open_position(state: F64, cfg: F64, t: float, side: float, price: float, units: float, fee_rate: float) -> None:
    fee = units * price * fee_rate
    state[S_CASH] -= fee
    state[S_FEES_TOTAL] += fee
    state[S_UNITS] = side * units
    state[S_ENTRY_PRICE] = price
    state[S_ENTRY_TIME] = t
    state[S_ENTRY_FEES] = fee
    state[S_FUNDING] = 0.0
    state[S_WATERMARK] = price
    lev = cfg[C_LEVERAGE]
    state[S_MARGIN] = units * price / lev
    sl, tp, mm = cfg[C_STOP_LOSS], cfg[C_TAKE_PROFIT], cfg[C_MAINT_MARGIN]
    state[S_STOP_PRICE] = price * (1.0 - side * sl) if sl > 0 else np.nan
    state[S_TAKE_PRICE] = price * (1.0 + side * tp) if tp > 0 else np.nan
    if mm > 0:
        state[S_LIQ_PRICE] = price * (1.0 - side / lev) / (1.0 - side * mm)
    else:
        state[S_LIQ_PRICE] = np.nan


@kernel
def _close_position(state: F64, log: F64, t: float, price: float, fee_rate: float, reason: int) -> None:
    units = state[S_UNITS]
    side = 1.0 if units > 0 else -1.0
    qty = abs(units)
    if reason == EXIT_LIQUIDATION:
        # Isolated margin: the whole margin is gone (the exchange keeps what maintenance margin remains).
        gross = -state[S_MARGIN]
        fee = 0.0
    else:
        gross = units * (price - state[S_ENTRY_PRICE])
        fee = qty * price * fee_rate
    state[S_CASH] += gross - fee
    state[S_FEES_TOTAL] += fee
    pnl = gross - fee - state[S_ENTRY_FEES] - state[S_FUNDING]
    state[S_TRADES] += 1.0
    if pnl > 0:
        state[S_WINS] += 1.0
        state[S_GROSS_PROFIT] += pnl
    else:
        state[S_GROSS_LOSS] -= pnl
    row = int(state[S_LOGGED])
    if row < log.shape[0]:
        log[row, T_SIDE] = side
        log[row, T_ENTRY_TIME] = state[S_ENTRY_TIME]
        log[row, T_EXIT_TIME] = t
        log[row, T_ENTRY_PRICE] = state[S_ENTRY_PRICE]
        log[row, T_EXIT_PRICE] = price
        log[row, T_UNITS] = qty
        log[row, T_PNL] = pnl
        log[row, T_FEES] = fee + state[S_ENTRY_FEES]
        log[row, T_FUNDING] = state[S_FUNDING]
        log[row, T_REASON] = reason
        state[S_LOGGED] = row + 1
    else:
        state[S_DROPPED] += 1.0
    _clear_position(state)


@kernel
def _entry_units(state: F64, cfg: F64, price: float, fee_rate: float, order_units: float) -> float:
    if order_units > 0:
        return order_units
    if cfg[C_UNITS] > 0:
        return cfg[C_UNITS]
    # Commit `size` of equity as margin, leaving room for the entry fee so cash covers it.
    equity = state[S_CASH]
    if equity <= 0:
        return 0.0
    return equity * cfg[C_SIZE] * cfg[C_LEVERAGE] / (price * (1.0 + fee_rate * cfg[C_LEVERAGE]))


@kernel
def _release(state: F64, order: F64) -> None:
    order[O_ACTIVE] = 0.0
    state[S_WORKING_ORDERS] -= 1.0


# --- fills ----------------------------------------------------------------------------------------------------
@kernel
def _fill_order(state: F64, cfg: F64, log: F64, order: F64, t: float, price: float, fee_rate: float) -> None:
    """Execute one triggered order at `price`; the order slot is released."""
    _release(state, order)
    side = order[O_SIDE]
    units = state[S_UNITS]
    if order[O_ACTION] == ACTION_CLOSE:
        if units != 0.0 and (units > 0) != (side > 0):
            _close_position(state, log, t, price, fee_rate, EXIT_ORDER)
        return
    if units != 0.0 and (units > 0) == (side > 0):
        return  # already on this side: no pyramiding
    if units != 0.0:
        _close_position(state, log, t, price, fee_rate, EXIT_ORDER)
    if side < 0 and cfg[C_LONG_ONLY] > 0:
        return
    qty = _entry_units(state, cfg, price, fee_rate, order[O_UNITS])
    if qty > 0:
        _open_position(state, cfg, t, side, price, qty, fee_rate)


@kernel
def _oldest_market_order(orders: F64) -> int:
    best = -1
    for k in range(orders.shape[0]):
        is_market = orders[k, O_ACTIVE] > 0 and orders[k, O_TYPE] == ORDER_MARKET
        if is_market and (best < 0 or orders[k, O_ID] < orders[best, O_ID]):
            best = k
    return best


@kernel
def _fill_market_orders(state: F64, cfg: F64, orders: F64, log: F64, t: float, o: float) -> None:
    """Market orders fill at the open in submission order (a close then an open is a flip)."""
    slip = cfg[C_SLIPPAGE]
    k = _oldest_market_order(orders)
    while k >= 0:
        order = orders[k]
        price = o * (1.0 + order[O_SIDE] * slip)
        _fill_order(state, cfg, log, order, t, price, cfg[C_TAKER_FEE])
        k = _oldest_market_order(orders)


@kernel
def resting_fill_price(order: F64, o: float, h: float, lo: float, slip: float) -> float:
    """The price this bar fills a limit/stop order at, NaN if it keeps waiting."""
    side, px = order[O_SIDE], order[O_PRICE]
    if order[O_TYPE] == ORDER_LIMIT:
        if side > 0:
            return min(o, px) if lo <= px else np.nan
        return max(o, px) if h >= px else np.nan
    if side > 0:
        return max(o, px) * (1.0 + slip) if h >= px else np.nan
    return min(o, px) * (1.0 - slip) if lo <= px else np.nan


@kernel
def _fill_resting_orders(state: F64, cfg: F64, orders: F64, log: F64, t: float, o: float, h: float, lo: float) -> None:
    for k in range(orders.shape[0]):
        order = orders[k]
        if order[O_ACTIVE] == 0 or order[O_TYPE] == ORDER_MARKET:
            continue
        if order[O_TIF] == TIF_IOC:
            # Immediate-or-cancel only gets the opening auction: it must be marketable at the open.
            marketable = (order[O_SIDE] > 0) == (order[O_TYPE] == ORDER_LIMIT)
            hit = o <= order[O_PRICE] if marketable else o >= order[O_PRICE]
            if not hit:
                _release(state, order)
                continue
        price = resting_fill_price(order, o, h, lo, cfg[C_SLIPPAGE])
        if not math.isnan(price):
            fee = cfg[C_MAKER_FEE] if order[O_TYPE] == ORDER_LIMIT else cfg[C_TAKER_FEE]
            _fill_order(state, cfg, log, order, t, price, fee)


@kernel
def _expire_day_orders(state: F64, orders: F64, t: float) -> None:
    """Day orders die when a bar of a later UTC day opens, before it can fill them."""
    for k in range(orders.shape[0]):
        if orders[k, O_ACTIVE] > 0 and t >= orders[k, O_EXPIRES]:
            _release(state, orders[k])


@kernel
def _cancel_unfilled_ioc(state: F64, orders: F64) -> None:
    for k in range(orders.shape[0]):
        if orders[k, O_ACTIVE] > 0 and orders[k, O_TIF] == TIF_IOC:
            _release(state, orders[k])


# --- protective exits -----------------------------------------------------------------------------------------
@inline_kernel
def _trailing_level(state: F64, cfg: F64) -> float:
    trail = cfg[C_TRAILING]
    if trail <= 0:
        return np.nan
    side = 1.0 if state[S_UNITS] > 0 else -1.0
    return state[S_WATERMARK] * (1.0 - side * trail)


@inline_kernel
def _first_adverse(level: float, reason: int, best_level: float, best_reason: int, side: float, h: float,
                   lo: float) -> tuple[float, int]:
    """Keep the adverse level the price meets first (the nearest to the open) among those the bar touched."""
    if math.isnan(level):
        return best_level, best_reason
    touched = lo <= level if side > 0 else h >= level
    if touched and (best_reason < 0 or side * (level - best_level) > 0):
        return level, reason
    return best_level, best_reason


@inline_kernel
def _protective_touched(state: F64, cfg: F64, h: float, lo: float) -> bool:
    """Cheap pre-check (NaN levels compare False): does this bar reach any protective level at all?"""
    trail = _trailing_level(state, cfg)
    if state[S_UNITS] > 0:
        return lo <= state[S_LIQ_PRICE] or lo <= state[S_STOP_PRICE] or lo <= trail or h >= state[S_TAKE_PRICE]
    return h >= state[S_LIQ_PRICE] or h >= state[S_STOP_PRICE] or h >= trail or lo <= state[S_TAKE_PRICE]


@kernel
def _protective_exits(state: F64, cfg: F64, log: F64, t: float, o: float, h: float, lo: float) -> None:
    side = 1.0 if state[S_UNITS] > 0 else -1.0
    best_level, best_reason = _first_adverse(state[S_LIQ_PRICE], EXIT_LIQUIDATION, np.nan, -1, side, h, lo)
    best_level, best_reason = _first_adverse(state[S_STOP_PRICE], EXIT_STOP_LOSS, best_level, best_reason, side,
                                             h, lo)
    best_level, best_reason = _first_adverse(_trailing_level(state, cfg), EXIT_TRAILING, best_level, best_reason,
                                             side, h, lo)
    if best_reason == EXIT_LIQUIDATION:
        _close_position(state, log, t, best_level, 0.0, EXIT_LIQUIDATION)
    elif best_reason >= 0:
        # A stop is a market order once triggered: a gap fills at the (worse) open, then slippage.
        px = min(o, best_level) if side > 0 else max(o, best_level)
        px *= 1.0 - side * cfg[C_SLIPPAGE]
        _close_position(state, log, t, px, cfg[C_TAKER_FEE], best_reason)
    else:
        take = state[S_TAKE_PRICE]
        if not math.isnan(take) and (h >= take if side > 0 else lo <= take):
            px = max(o, take) if side > 0 else min(o, take)
            _close_position(state, log, t, px, cfg[C_MAKER_FEE], EXIT_TAKE_PROFIT)


# --- the bar --------------------------------------------------------------------------------------------------
@inline_kernel
def _mark_to_close(state: F64, h: float, lo: float, c: float) -> float:
    units = state[S_UNITS]
    if units > 0:
        state[S_WATERMARK] = max(state[S_WATERMARK], h)
    elif units < 0:
        state[S_WATERMARK] = min(state[S_WATERMARK], lo)
    equity = state[S_CASH]
    if units != 0.0:
        equity += units * (c - state[S_ENTRY_PRICE])
    return equity


# equity at the last close, sum r, sum r^2, sum min(r, 0)^2, peak equity, max drawdown, bars, bars in the market
Acc = tuple[float, float, float, float, float, float, float, float]


@inline_kernel
def stats_step(acc: Acc, equity: float, in_market: bool) -> Acc:
    """Fold one bar's closing equity into the statistics accumulators (pure: callers keep them where they like —
    the backtest loop in registers, the bar-by-bar Engine in ``state`` — with identical arithmetic)."""
    prev, sum_ret, sum_ret2, sum_down2, peak, max_dd, bars, bars_in_market = acc
    ret = equity / prev - 1.0 if prev > 0 else 0.0
    # Branch-free: the sign of a bar's return is a coin flip the CPU cannot predict.
    down = min(ret, 0.0)
    peak = max(peak, equity)
    if equity < peak * (1.0 - max_dd):  # a new deepest drawdown: rare, so well predicted
        max_dd = 1.0 - equity / peak
    return (equity, sum_ret + ret, sum_ret2 + ret * ret, sum_down2 + down * down, peak, max_dd, bars + 1.0,
            bars_in_market + (1.0 if in_market else 0.0))


@inline_kernel
def load_acc(state: F64) -> Acc:
    return (state[S_EQUITY], state[S_SUM_RET], state[S_SUM_RET2], state[S_SUM_DOWN2], state[S_PEAK_EQUITY],
            state[S_MAX_DRAWDOWN], state[S_BARS], state[S_BARS_IN_MARKET])


@inline_kernel
def store_acc(state: F64, acc: Acc) -> None:
    (state[S_EQUITY], state[S_SUM_RET], state[S_SUM_RET2], state[S_SUM_DOWN2], state[S_PEAK_EQUITY],
     state[S_MAX_DRAWDOWN], state[S_BARS], state[S_BARS_IN_MARKET]) = acc


@inline_kernel
def fill_bar(
    state: F64, orders: F64, cfg: F64, log: F64, t: float, o: float, h: float, lo: float, c: float,
    funding_rate: float,
) -> float:
    """Steps 1-6 of a bar except the return statistics; returns equity at the close."""
    units = state[S_UNITS]
    if funding_rate != 0.0 and units != 0.0:
        payment = units * o * funding_rate
        state[S_CASH] -= payment
        state[S_FUNDING] += payment
        state[S_FUNDING_TOTAL] += payment
    working = state[S_WORKING_ORDERS] > 0
    if working:
        _expire_day_orders(state, orders, t)
        _fill_market_orders(state, cfg, orders, log, t, o)
    # The guards keep the common bar (nothing working, nothing touched) free of calls: in the compiled loop each
    # call that takes arrays pays reference counting, which would dominate the cost of a quiet bar.
    if state[S_UNITS] != 0.0 and _protective_touched(state, cfg, h, lo):
        _protective_exits(state, cfg, log, t, o, h, lo)
    if state[S_WORKING_ORDERS] > 0:
        _fill_resting_orders(state, cfg, orders, log, t, o, h, lo)
        _cancel_unfilled_ioc(state, orders)
    return _mark_to_close(state, h, lo, c)


@inline_kernel
def process_bar(
    state: F64, orders: F64, cfg: F64, log: F64, t: float, o: float, h: float, lo: float, c: float,
    funding_rate: float,
) -> float:
    """Advance the account through one closed bar (see the module docstring); returns equity at its close."""
    equity = fill_bar(state, orders, cfg, log, t, o, h, lo, c, funding_rate)
    store_acc(state, stats_step(load_acc(state), equity, state[S_UNITS] != 0.0))
    return equity


@kernel
def submit_order(
    state: F64, orders: F64, side: float, order_type: int, price: float, units: float, tif: int, action: int,
    t: float,
) -> float:
    """Queue an order after the close at time ``t``; returns its id, or -1 when all slots are taken."""
    for k in range(orders.shape[0]):
        if orders[k, O_ACTIVE] == 0:
            oid = state[S_NEXT_ORDER_ID]
            state[S_NEXT_ORDER_ID] = oid + 1.0
            orders[k, O_ACTIVE] = 1.0
            state[S_WORKING_ORDERS] += 1.0
            orders[k, O_SIDE] = side
            orders[k, O_TYPE] = order_type
            orders[k, O_PRICE] = price
            orders[k, O_UNITS] = units
            orders[k, O_TIF] = tif
            orders[k, O_EXPIRES] = (math.floor(t / DAY_MS) + 1.0) * DAY_MS if tif == TIF_DAY else np.inf
            orders[k, O_ACTION] = action
            orders[k, O_ID] = oid
            orders[k, O_SUBMITTED] = t
            return oid
    return -1.0


@kernel
def cancel_order(state: F64, orders: F64, order_id: float) -> bool:
    for k in range(orders.shape[0]):
        if orders[k, O_ACTIVE] > 0 and orders[k, O_ID] == order_id:
            _release(state, orders[k])
            return True
    return False


@inline_kernel
def apply_signals(
    state: F64, orders: F64, cfg: F64, t: float, long_entry: bool, long_exit: bool, short_entry: bool,
    short_exit: bool,
) -> None:
    """Turn one bar's close signals into market orders for the next open.

    Conflicting entries (long and short on one bar) cancel out. Under ``long_only`` a short entry closes a long.
    """
    if long_entry and short_entry:
        long_entry = short_entry = False
    units = state[S_UNITS]
    long_only = cfg[C_LONG_ONLY] > 0
    if units > 0:
        if short_entry and not long_only:
            submit_order(state, orders, -1.0, ORDER_MARKET, np.nan, 0.0, TIF_GTC, ACTION_OPEN, t)
        elif long_exit or short_entry:
            submit_order(state, orders, -1.0, ORDER_MARKET, np.nan, 0.0, TIF_GTC, ACTION_CLOSE, t)
    elif units < 0:
        if long_entry:
            submit_order(state, orders, 1.0, ORDER_MARKET, np.nan, 0.0, TIF_GTC, ACTION_OPEN, t)
        elif short_exit:
            submit_order(state, orders, 1.0, ORDER_MARKET, np.nan, 0.0, TIF_GTC, ACTION_CLOSE, t)
    elif long_entry:
        submit_order(state, orders, 1.0, ORDER_MARKET, np.nan, 0.0, TIF_GTC, ACTION_OPEN, t)
    elif short_entry and not long_only:
        submit_order(state, orders, -1.0, ORDER_MARKET, np.nan, 0.0, TIF_GTC, ACTION_OPEN, t)


@kernel
def run_bars(
    state: F64, orders: F64, cfg: F64, log: F64, time: F64, open_: F64, high: F64, low: F64, close: F64,
    funding: F64, long_entries: B1, long_exits: B1, short_entries: B1, short_exits: B1, equity_out: F64,
) -> None:
    """The vectorized backtest: ``process_bar`` then ``apply_signals`` for every bar, nothing else.

    ``funding`` is the per-bar rate (empty = none); ``equity_out`` receives equity per bar (empty = don't keep).
    """
    has_funding = funding.shape[0] > 0
    keep_equity = equity_out.shape[0] > 0
    acc = load_acc(state)  # in registers for the loop; process_bar keeps them in `state` (same stats_step)
    for i in range(time.shape[0]):
        if state[S_UNITS] == 0.0 and state[S_WORKING_ORDERS] == 0.0:
            # Flat with nothing working: process_bar would leave the account as it is and fold the same equity
            # in again (a zero return), so only the bar count moves. Half of a long-only run's bars are like this.
            equity = acc[0]
            acc = (equity, acc[1], acc[2], acc[3], acc[4], acc[5], acc[6] + 1.0, acc[7])
        else:
            rate = funding[i] if has_funding else 0.0
            equity = fill_bar(state, orders, cfg, log, time[i], open_[i], high[i], low[i], close[i], rate)
            acc = stats_step(acc, equity, state[S_UNITS] != 0.0)
        if keep_equity:
            equity_out[i] = equity
        apply_signals(state, orders, cfg, time[i], long_entries[i], long_exits[i], short_entries[i], short_exits[i])
    store_acc(state, acc)
