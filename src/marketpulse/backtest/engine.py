"""The public engine API: ``Backtest(...).run()`` for whole series, ``Engine`` for bar-by-bar (paper) trading.

Both drive the same compiled core (``marketpulse.backtest.core``), so a strategy replayed bar by bar through
``Engine`` makes exactly the trades ``Backtest`` makes on the same candles (tested in tests/backtest).

Incremental use (paper trading)::

    engine = Engine(cash=10_000, settings=EngineSettings(taker_fee_bps=4))
    for bar in closed_bars:                       # one call per CLOSED bar, in time order
        closed = engine.on_bar(bar.open_time, bar.open, bar.high, bar.low, bar.close, funding_rate=0.0)
        # ... strategy decides on data up to and including this bar ...
        engine.apply_signals(bar.open_time, long_entry=..., long_exit=..., short_entry=..., short_exit=...)
        # or explicit orders, working from the next bar on:
        order_id = engine.submit("buy", "limit", time_ms=bar.open_time, price=41_000.0, tif="gtc")

``on_bar`` returns the trades closed during that bar (fills, stops, take-profits, liquidation); ``step`` is the
same call returning the raw trade-log rows. ``position``, ``entry_price``, ``equity``, ``cash``, ``open_trade()``
and ``working_orders()`` expose the account between bars; ``state``/``orders`` are plain numpy arrays, so an
account is snapshotted and restored by copying them (their layout is ``core``'s ``S_*``/``O_*`` constants).
``cancel(order_id)`` withdraws a working order. Orders: market (next open), limit and stop, time in force gtc,
ioc (must trade at the next open) or day (dies when a later UTC day's bar opens); ``action="close"`` is
reduce-only. One net position: no pyramiding, an opposite ``open`` flips.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, NamedTuple

import numpy as np

from marketpulse.backtest import core
from marketpulse.backtest.core import F64
from marketpulse.backtest.stats import Stats, stats_from_state
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.strategies.base import BarState, Signals, Strategy, get_strategy

FUNDING_INTERVAL_MS = 8 * 3_600_000
OrderSide = Literal["buy", "sell"]
OrderKind = Literal["market", "limit", "stop"]
TimeInForce = Literal["gtc", "ioc", "day"]
OrderAction = Literal["open", "close"]
_ORDER_TYPES = {"market": core.ORDER_MARKET, "limit": core.ORDER_LIMIT, "stop": core.ORDER_STOP}
_TIFS = {"gtc": core.TIF_GTC, "ioc": core.TIF_IOC, "day": core.TIF_DAY}


class LookAheadError(ValueError):
    """A strategy's signals changed when future bars were removed: it peeks ahead."""


@dataclass(frozen=True)
class EngineSettings:
    """Constant settings of one run. Fractions are of the entry price (0.02 = 2 %); 0 switches a feature off."""

    taker_fee_bps: float = 0.0  # market orders, stops, signal fills
    maker_fee_bps: float = 0.0  # limit orders, take-profit
    slippage_bps: float = 0.0  # against the trader on taker fills
    size: float = 1.0  # fraction of equity committed as margin per entry
    units: float = 0.0  # fixed units per entry instead of `size` when > 0
    stop_loss: float = 0.0
    take_profit: float = 0.0
    trailing_stop: float = 0.0
    leverage: float = 1.0
    maint_margin: float = 0.0  # > 0 enables liquidation
    long_only: bool = False

    def __post_init__(self) -> None:
        for name in ("taker_fee_bps", "maker_fee_bps", "slippage_bps", "units", "stop_loss", "take_profit",
                     "trailing_stop", "maint_margin"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.size > 0:
            raise ValueError(f"size must be > 0, got {self.size!r}")
        if not self.leverage >= 1:
            raise ValueError(f"leverage must be >= 1, got {self.leverage!r}")

    def cfg(self) -> F64:
        return core.new_cfg(
            taker_fee_bps=self.taker_fee_bps, maker_fee_bps=self.maker_fee_bps, slippage_bps=self.slippage_bps,
            size=self.size, units=self.units, stop_loss=self.stop_loss, take_profit=self.take_profit,
            trailing_stop=self.trailing_stop, leverage=self.leverage, maint_margin=self.maint_margin,
            long_only=self.long_only,
        )


class Trade(NamedTuple):
    """One round trip. A NamedTuple: a million-bar run can close tens of thousands, built on first access."""

    side: Literal["long", "short"]
    entry_time: int  # epoch ms of the fill bar's open
    exit_time: int | None  # None while open
    entry_price: float
    exit_price: float | None  # the last close while open
    size: float  # units
    pnl: float  # net of fees and funding (unrealized at the last close while open)
    fees: float
    funding: float
    exit_reason: str  # order, stop_loss, take_profit, trailing_stop, liquidation, open

    def as_json(self) -> dict[str, Any]:
        return {
            "side": self.side, "entry_time": self.entry_time, "exit_time": self.exit_time,
            "entry_price": self.entry_price, "exit_price": self.exit_price, "size": self.size, "pnl": self.pnl,
            "fees": self.fees, "funding": self.funding, "exit_reason": self.exit_reason,
        }


def trades_from_log(log: F64, rows: int | None = None) -> list[Trade]:
    """Trade objects from core trade-log rows (``tolist`` first: Python floats, and far fewer numpy calls)."""
    reasons = core.EXIT_REASONS
    return [
        Trade("long" if r[core.T_SIDE] > 0 else "short", int(r[core.T_ENTRY_TIME]), int(r[core.T_EXIT_TIME]),
              r[core.T_ENTRY_PRICE], r[core.T_EXIT_PRICE], r[core.T_UNITS], r[core.T_PNL], r[core.T_FEES],
              r[core.T_FUNDING], reasons[int(r[core.T_REASON])])
        for r in log[:rows].tolist()
    ]


def open_trade(state: F64, last_close: float) -> Trade | None:
    """The still-open position as a trade valued at ``last_close`` (no exit fee), or None when flat."""
    units = float(state[core.S_UNITS])
    if units == 0:
        return None
    entry = float(state[core.S_ENTRY_PRICE])
    pnl = units * (last_close - entry) - state[core.S_ENTRY_FEES] - state[core.S_FUNDING]
    return Trade(
        side="long" if units > 0 else "short", entry_time=int(state[core.S_ENTRY_TIME]), exit_time=None,
        entry_price=entry, exit_price=last_close, size=abs(units), pnl=float(pnl),
        fees=float(state[core.S_ENTRY_FEES]), funding=float(state[core.S_FUNDING]), exit_reason="open",
    )


class Engine:
    """Bar-by-bar access to the core (paper trading). See the module docstring for the call order."""

    LOG_CAPACITY = 8  # trades one bar can close (a flip closes one; stops one); drained every bar

    def __init__(self, cash: float = 10_000.0, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.cfg = self.settings.cfg()
        self.state = core.new_state(float(cash))
        self.orders = core.new_orders()
        self._log = np.zeros((self.LOG_CAPACITY, core.N_TRADE))
        self.last_close = math.nan

    def on_bar(self, time_ms: int, open_: float, high: float, low: float, close: float,
               funding_rate: float = 0.0) -> list[Trade]:
        """Process one closed bar; returns the trades it closed."""
        return trades_from_log(self.step(time_ms, open_, high, low, close, funding_rate))

    def step(self, time_ms: int, open_: float, high: float, low: float, close: float,
             funding_rate: float = 0.0) -> F64:
        """``on_bar`` returning the raw trade-log rows (``core.T_*`` columns) of the trades the bar closed."""
        self.state[core.S_LOGGED] = 0.0
        core.process_bar(self.state, self.orders, self.cfg, self._log, float(time_ms), float(open_), float(high),
                         float(low), float(close), float(funding_rate))
        self.last_close = float(close)
        return self._log[: int(self.state[core.S_LOGGED])].copy()

    def apply_signals(self, time_ms: int, long_entry: bool = False, long_exit: bool = False,
                      short_entry: bool = False, short_exit: bool = False) -> None:
        core.apply_signals(self.state, self.orders, self.cfg, float(time_ms), bool(long_entry), bool(long_exit),
                           bool(short_entry), bool(short_exit))

    def submit(self, side: OrderSide, kind: OrderKind = "market", *, time_ms: int, price: float | None = None,
               units: float | None = None, tif: TimeInForce = "gtc", action: OrderAction = "open") -> int:
        """Queue an order after the close at ``time_ms``; it works from the next bar. Returns its id."""
        if side not in ("buy", "sell"):
            raise ValueError(f"order side must be buy or sell, not {side!r}")
        if kind not in _ORDER_TYPES or tif not in _TIFS or action not in ("open", "close"):
            raise ValueError(f"bad order: kind={kind!r} tif={tif!r} action={action!r}")
        if kind != "market" and (price is None or not price > 0):
            raise ValueError(f"a {kind} order needs a positive price")
        oid = core.submit_order(
            self.state, self.orders, 1.0 if side == "buy" else -1.0, _ORDER_TYPES[kind],
            math.nan if price is None else float(price), float(units or 0.0), _TIFS[tif],
            core.ACTION_OPEN if action == "open" else core.ACTION_CLOSE, float(time_ms),
        )
        if oid < 0:
            raise RuntimeError(f"too many working orders (at most {core.MAX_ORDERS})")
        return int(oid)

    def cancel(self, order_id: int) -> bool:
        return bool(core.cancel_order(self.state, self.orders, float(order_id)))

    def working_orders(self) -> list[dict[str, Any]]:
        rows = self.orders[self.orders[:, core.O_ACTIVE] > 0]
        kinds = {v: k for k, v in _ORDER_TYPES.items()}
        tifs = {v: k for k, v in _TIFS.items()}
        return [{
            "id": int(r[core.O_ID]), "side": "buy" if r[core.O_SIDE] > 0 else "sell",
            "kind": kinds[int(r[core.O_TYPE])],
            "price": None if math.isnan(r[core.O_PRICE]) else float(r[core.O_PRICE]),
            "units": float(r[core.O_UNITS]) or None, "tif": tifs[int(r[core.O_TIF])],
            "action": "open" if r[core.O_ACTION] == core.ACTION_OPEN else "close",
        } for r in sorted(rows, key=lambda r: r[core.O_ID])]

    @property
    def position(self) -> float:
        return float(self.state[core.S_UNITS])

    @property
    def entry_price(self) -> float:
        return float(self.state[core.S_ENTRY_PRICE])

    @property
    def equity(self) -> float:
        return float(self.state[core.S_EQUITY])

    @property
    def cash(self) -> float:
        return float(self.state[core.S_CASH])

    def open_trade(self) -> Trade | None:
        return open_trade(self.state, self.last_close)


@dataclass
class BacktestResult:
    trade_log: F64  # closed trades as core trade-log rows (T_* columns)
    open_position: Trade | None  # the position still open at the end, valued at the last close
    equity: F64  # equity at each bar's close
    time: F64  # bar open times, epoch ms
    stats: Stats
    params: dict[str, Any]
    strategy: str
    candles: CandleFrame

    @cached_property
    def trades(self) -> list[Trade]:
        """Closed trades in order, then the open one (``exit_time`` None) if any."""
        closed = trades_from_log(self.trade_log)
        return closed + [self.open_position] if self.open_position is not None else closed

    def as_json(self) -> dict[str, Any]:
        return {"stats": _json_safe(self.stats.as_dict()), "trades": [_json_safe(t.as_json()) for t in self.trades]}


def _json_safe(d: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/inf: report them as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


StrategyLike = str | type[Strategy] | Strategy | Signals


def resolve_strategy(strategy: str | type[Strategy] | Strategy) -> Strategy:
    if isinstance(strategy, str):
        return get_strategy(strategy)()
    if isinstance(strategy, type):
        return strategy()
    return strategy


def bar_interval_ms(candles: CandleFrame) -> float:
    """The bar spacing: the median gap between open times (robust to the odd missing bar)."""
    if len(candles) < 2:
        return 60_000.0
    return float(np.median(np.diff(candles.time[: min(len(candles), 10_001)])))


def funding_per_bar(time: F64, *, rate: float = 0.0, series: tuple[Sequence[int], Sequence[float]] | None = None,
                    interval_ms: int = FUNDING_INTERVAL_MS) -> F64:
    """The funding rate charged at each bar's open: a constant ``rate`` at every ``interval_ms`` boundary
    (00:00/08:00/16:00 UTC for 8 h), or a (times, rates) series, each charged at the first bar opening at or after
    its time. Empty when there is no funding."""
    if series is None and rate == 0.0:
        return np.empty(0)
    out = np.zeros(len(time))
    if series is not None:
        times = np.asarray(series[0], dtype=np.float64)
        rates = np.asarray(series[1], dtype=np.float64)
        idx = np.searchsorted(time, times, "left")
        ok = (idx < len(time)) & (times > time[0] - interval_ms)
        np.add.at(out, idx[ok], rates[ok])
        return out
    period = np.floor(time / interval_ms)
    boundary = np.empty(len(time), dtype=np.bool_)
    boundary[0] = time[0] % interval_ms == 0
    boundary[1:] = period[1:] > period[:-1]
    out[boundary] = rate
    return out


def check_no_lookahead(strategy: Strategy, candles: CandleFrame, params: Mapping[str, Any],
                       full: Signals | None = None, cuts: Sequence[float] = (0.35, 0.6, 0.85)) -> None:
    """Recompute the signals on candles truncated at a few points; any difference from the full run means
    the strategy used bars after ``i`` to decide bar ``i``: raise LookAheadError naming the first such bar."""
    full = full if full is not None else strategy.signals(candles, params)
    n = len(candles)
    for cut in cuts:
        m = int(n * cut)
        if m < 2:
            continue
        part = strategy.signals(candles.slice(0, m), params)
        for name in ("long_entries", "long_exits", "short_entries", "short_exits"):
            diff = np.flatnonzero(getattr(part, name) != getattr(full, name)[:m])
            if len(diff):
                i = int(diff[0])
                raise LookAheadError(
                    f"strategy {getattr(strategy, 'name', type(strategy).__name__)!r} looks ahead: {name}[{i}] "
                    f"changes when bars after {m - 1} are removed (signals at bar i may use bars 0..i only)"
                )


class Backtest:
    """One strategy over one candle series. Signals decided at bar i's close fill at bar i+1's open.

    ``strategy``: a registered name, a Strategy class or instance, or precomputed ``Signals``.
    ``size`` is the fraction of equity committed per entry (``units`` for a fixed quantity instead);
    ``stop_loss``/``take_profit``/``trailing_stop`` are fractions of the entry price; ``funding_rate`` is charged
    every 8 h (or pass ``funding`` = (times_ms, rates)); ``leverage`` with ``maint_margin`` > 0 liquidates.
    """

    def __init__(
        self, candles: CandleFrame, strategy: StrategyLike, params: Mapping[str, Any] | None = None, *,
        cash: float = 10_000.0, fee_bps: float = 0.0, maker_fee_bps: float | None = None, slippage_bps: float = 0.0,
        size: float = 1.0, units: float = 0.0, long_only: bool = False, stop_loss: float = 0.0,
        take_profit: float = 0.0, trailing_stop: float = 0.0, leverage: float = 1.0, maint_margin: float = 0.0,
        funding_rate: float = 0.0, funding: tuple[Sequence[int], Sequence[float]] | None = None,
        check_lookahead: bool = True,
    ) -> None:
        if len(candles) == 0:
            raise ValueError("no candles to backtest")
        if not cash > 0:
            raise ValueError(f"cash must be > 0, got {cash!r}")
        self.candles = candles
        self.cash = float(cash)
        self.settings = EngineSettings(
            taker_fee_bps=fee_bps, maker_fee_bps=fee_bps if maker_fee_bps is None else maker_fee_bps,
            slippage_bps=slippage_bps, size=size, units=units, stop_loss=stop_loss, take_profit=take_profit,
            trailing_stop=trailing_stop, leverage=leverage, maint_margin=maint_margin, long_only=long_only,
        )
        self.signals: Signals | None = strategy if isinstance(strategy, Signals) else None
        self.strategy: Strategy | None = None if isinstance(strategy, Signals) else resolve_strategy(strategy)
        self.params: dict[str, Any] = (
            dict(params or {}) if self.strategy is None else type(self.strategy).resolve_params(params)
        )
        if self.signals is not None and len(self.signals) != len(candles):
            raise ValueError(f"signals have {len(self.signals)} rows, candles {len(candles)}")
        self.time = candles.time.astype(np.float64)
        self.funding = funding_per_bar(self.time, rate=funding_rate, series=funding)
        self.check_lookahead = check_lookahead

    @property
    def strategy_name(self) -> str:
        return "signals" if self.strategy is None else getattr(self.strategy, "name", type(self.strategy).__name__)

    def compute_signals(self) -> Signals:
        if self.signals is not None:
            return self.signals
        assert self.strategy is not None
        signals = self.strategy.signals(self.candles, self.params)
        if self.check_lookahead:
            check_no_lookahead(self.strategy, self.candles, self.params, full=signals)
        return signals

    def run(self) -> BacktestResult:
        if self.strategy is not None and self.strategy.path_dependent:
            return self._run_per_bar(self.strategy)
        sig = self.compute_signals()
        c = self.candles
        state = core.new_state(self.cash)
        capacity = int(sig.long_entries.sum() + sig.short_entries.sum()) + 1  # every trade needs an entry
        log = np.zeros((capacity, core.N_TRADE))
        equity = np.empty(len(c))
        core.run_bars(state, core.new_orders(), self.settings.cfg(), log, self.time, c.open, c.high, c.low, c.close,
                      self.funding, sig.long_entries, sig.long_exits, sig.short_entries, sig.short_exits, equity)
        return self._result(state, log[: int(state[core.S_LOGGED])], equity)

    def _run_per_bar(self, strategy: Strategy) -> BacktestResult:
        """Path-dependent strategies: the bar-by-bar Engine, the strategy's ``on_bar`` at every close."""
        c = self.candles
        engine = Engine(self.cash, self.settings)
        bar_state = BarState(params=self.params)
        logged: list[F64] = []
        equity = np.empty(len(c))
        for i in range(len(c)):
            rate = float(self.funding[i]) if len(self.funding) else 0.0
            logged.append(engine.step(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], rate))
            equity[i] = engine.equity
            bar_state.position, bar_state.entry_price, bar_state.equity = (
                engine.position, engine.entry_price, engine.equity)
            actions = set(strategy.on_bar(i, c.slice(0, i + 1), bar_state))
            engine.apply_signals(int(c.time[i]), "long_entry" in actions, "long_exit" in actions,
                                 "short_entry" in actions, "short_exit" in actions)
        return self._result(engine.state, np.concatenate(logged), equity)

    def _result(self, state: F64, trade_log: F64, equity: F64) -> BacktestResult:
        return BacktestResult(
            trade_log=trade_log, open_position=open_trade(state, float(self.candles.close[-1])), equity=equity,
            time=self.time, stats=stats_from_state(state, bar_interval_ms(self.candles)), params=self.params,
            strategy=self.strategy_name, candles=self.candles,
        )
