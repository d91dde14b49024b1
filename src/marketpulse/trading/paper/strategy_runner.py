"""A strategy deployed to paper, bar by bar, on the backtester's own `Engine`. Pure: no I/O, no clock.

Parity by construction: the deployment's fills are the engine's fills. The engine steps on every closed
**1-minute** candle, while the strategy decides only when a bar of the deployment's interval closes (the
minutes aggregated, buckets aligned to UTC like the library's resampling). A signal at an interval close
becomes a market order that fills at the open of the next minute — which *is* the next interval bar's open,
so entries, exits, sizes and P&L equal a backtest over the aggregated bars (`Backtest(...).run()`), while the
fill reaches the paper account one minute, not one interval, after the signal. (Protective stops would be
judged on minutes here and on whole bars in a backtest, so deployments don't take stops yet.)

The adapter asks the risk manager about each order the strategy submits (`proposals`) before it is accepted,
and `reject` withdraws one — turning a rejected flip into a plain exit, since exits are always allowed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import numpy as np

from marketpulse.backtest import core
from marketpulse.backtest.engine import Engine, EngineSettings, Trade, open_trade
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import MINUTE_MS
from marketpulse.marketdata.models import Candle
from marketpulse.strategies.base import BarState, Strategy

_BARS = ("time", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class EngineFill:
    """One side of a trade as the engine executed it: what the paper account books."""

    signed_units: float  # + bought, - sold
    price: float
    fee: float
    time_ms: int


@dataclass(frozen=True)
class Proposal:
    """An order the strategy just submitted to the engine, waiting for the risk manager's yes."""

    engine_order_id: int
    side: str  # buy | sell
    action: str  # open | close
    signed_units_estimate: float  # the position change it would cause, sized at the last close
    reference_price: float


@dataclass
class MinuteStep:
    fills: list[EngineFill] = field(default_factory=list)
    consumed_order_ids: list[int] = field(default_factory=list)  # engine orders that left the book this minute


@dataclass
class _Bucket:
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    last_minute: int


class StrategyRunner:
    def __init__(
        self, strategy: Strategy, params: Mapping[str, Any], interval_ms: int, engine: Engine,
        *, history_bars: int = 5_000, symbol: str = "", interval: str = "",
    ) -> None:
        if interval_ms % MINUTE_MS:
            raise ValueError("a deployment's interval must be a whole number of minutes")
        self.strategy, self.params, self.interval_ms, self.engine = strategy, dict(params), interval_ms, engine
        self.history_bars, self.symbol, self.interval = history_bars, symbol, interval
        self._bars: dict[str, list[float]] = {k: [] for k in _BARS}
        self._bucket: _Bucket | None = None
        self._bar_state = BarState(params=self.params)
        self.trades: list[Trade] = []  # every trade this deployment closed, in order
        self.last_minute: int | None = None

    # --- one closed minute ------------------------------------------------------------------------------------
    def on_minute(self, c: Candle) -> tuple[MinuteStep, bool]:
        """Step the engine through one closed 1m candle; True when it completed an interval bar to decide on.

        A minute from a *later* bucket first closes the earlier one (a missing last minute must not hold the
        strategy back) — the caller decides on it before this minute is stepped, so call `pending_close()`.
        """
        if self.last_minute is not None and c.open_time <= self.last_minute:
            return MinuteStep(), False  # a redelivered or out-of-order candle: the engine never steps back
        self.last_minute = c.open_time
        step = self._step_engine(c)
        self._add_to_bucket(c)
        complete = self._bucket is not None and c.open_time + MINUTE_MS >= self._bucket.start + self.interval_ms
        if complete:
            self._close_bucket()
        return step, complete

    def pending_close(self, c: Candle) -> bool:
        """True when `c` starts a new bucket while the previous one never saw its last minute: close it now."""
        if self._bucket is None or self._bucket_start(c.open_time) == self._bucket.start:
            return False
        if self.last_minute is not None and c.open_time <= self.last_minute:
            return False
        self._close_bucket()
        return True

    def _step_engine(self, c: Candle) -> MinuteStep:
        before_units, before_fees = self.engine.position, float(self.engine.state[core.S_ENTRY_FEES])
        before_orders = {o["id"] for o in self.engine.working_orders()}
        closed = self.engine.on_bar(c.open_time, c.open, c.high, c.low, c.close)
        step = MinuteStep()
        step.consumed_order_ids = sorted(before_orders - {o["id"] for o in self.engine.working_orders()})
        for t in closed:
            side = 1.0 if t.side == "long" else -1.0
            exit_fee = t.fees - before_fees  # a trade's fees are its entry fee plus its exit fee
            step.fills.append(EngineFill(-side * t.size, float(t.exit_price or 0.0), exit_fee, int(t.exit_time or 0)))
        opened = self.engine.position != 0.0 and int(self.engine.state[core.S_ENTRY_TIME]) == c.open_time
        if opened and (closed or before_units == 0.0):
            entry_fee = float(self.engine.state[core.S_ENTRY_FEES])
            step.fills.append(EngineFill(self.engine.position, self.engine.entry_price, entry_fee, c.open_time))
        self.trades += closed
        return step

    # --- interval bars and decisions --------------------------------------------------------------------------
    def _bucket_start(self, t: int) -> int:
        return t - t % self.interval_ms

    def _add_to_bucket(self, c: Candle) -> None:
        b = self._bucket
        if b is None or self._bucket_start(c.open_time) != b.start:
            self._bucket = _Bucket(self._bucket_start(c.open_time), c.open, c.high, c.low, c.close, c.volume,
                                   c.open_time)
            return
        b.high, b.low, b.close = max(b.high, c.high), min(b.low, c.low), c.close
        b.volume += c.volume
        b.last_minute = c.open_time

    def _close_bucket(self) -> None:
        b = self._bucket
        assert b is not None
        for key, value in (("time", b.start), ("open", b.open), ("high", b.high), ("low", b.low),
                           ("close", b.close), ("volume", b.volume)):
            self._bars[key].append(float(value))
            del self._bars[key][: -self.history_bars]
        self._bucket = None

    def frame(self) -> CandleFrame:
        b = self._bars
        return CandleFrame(
            np.asarray(b["time"], dtype=np.int64), np.asarray(b["open"]), np.asarray(b["high"]), np.asarray(b["low"]),
            np.asarray(b["close"]), np.asarray(b["volume"]), self.symbol, self.interval,
        )

    def decide(self) -> list[Proposal]:
        """Run the strategy at the last completed bar's close; its orders go to the engine and come back as
        proposals the risk manager must accept (or `reject`) before the next minute is stepped."""
        frame = self.frame()
        i = len(frame) - 1
        bar_time = int(frame.time[i])
        before = {o["id"] for o in self.engine.working_orders()}
        if self.strategy.path_dependent:
            st = self._bar_state
            st.position, st.entry_price, st.equity = self.engine.position, self.engine.entry_price, self.engine.equity
            actions = set(self.strategy.on_bar(i, frame, st))
            flags = [a in actions for a in ("long_entry", "long_exit", "short_entry", "short_exit")]
        else:
            sig = self.strategy.signals(frame, self.params)
            flags = [bool(sig.long_entries[i]), bool(sig.long_exits[i]), bool(sig.short_entries[i]),
                     bool(sig.short_exits[i])]
        self.engine.apply_signals(bar_time, *flags)
        close = float(frame.close[i])
        return [self._proposal(o, close) for o in self.engine.working_orders() if o["id"] not in before]

    def _proposal(self, order: dict[str, Any], close: float) -> Proposal:
        side = 1.0 if order["side"] == "buy" else -1.0
        held = self.engine.position
        change = -held if order["action"] == "close" else side * self._entry_units_estimate(close) - held
        return Proposal(order["id"], order["side"], order["action"], change, close)

    def _entry_units_estimate(self, price: float) -> float:
        s: EngineSettings = self.engine.settings
        if s.units > 0:
            return s.units
        fee = s.taker_fee_bps / 10_000.0
        # Equity at `price`, not cash: a flip's entry is sized on the cash its exit leaves, which includes the open
        # trade's P&L, and the risk manager's margin check must see that size, not a stale one.
        held = self.engine.position
        equity = self.engine.cash + (held * (price - self.engine.entry_price) if held else 0.0)  # flat: no entry price
        return max(equity, 0.0) * s.size * s.leverage / (price * (1.0 + fee * s.leverage))

    def entries_at(self, open_: float) -> list[Proposal]:
        """The entry orders waiting for the next minute, re-sized at its open (where the engine will fill them):
        what the risk manager checks again at fill time."""
        return [self._proposal(o, open_) for o in self.engine.working_orders() if o["action"] == "open"]

    def reject(self, proposal: Proposal, time_ms: int) -> None:
        """Withdraw a proposal the risk manager refused; a refused flip still exits the position it held."""
        self.engine.cancel(proposal.engine_order_id)
        if proposal.action == "open" and self.engine.position != 0.0:
            flips = (self.engine.position > 0) != (proposal.side == "buy")
            if flips:
                self.engine.submit(proposal.side, "market", time_ms=time_ms, action="close")  # type: ignore[arg-type]

    def all_trades(self) -> list[Trade]:
        """Closed trades, then the open position valued at the last close (as `Backtest.run()` reports them)."""
        still_open = self.engine.open_trade()
        return self.trades + ([still_open] if still_open else [])

    # --- snapshots (a restarted worker resumes where it stopped) --------------------------------------------------
    def snapshot(self) -> bytes:
        """Engine state, working orders, the forming bar, the last minute seen and the closed trades, by name
        (see `EngineSnapshot`; small: written every minute)."""
        b = self._bucket
        return _SNAPSHOT_ENCODER.encode(EngineSnapshot(
            state=_named(self.engine.state, STATE_FIELDS),
            orders=[_named(row, ORDER_FIELDS) for row in self.engine.orders if row[core.O_ACTIVE] > 0],
            last_close=self.engine.last_close,
            last_minute=self.last_minute,
            bucket=None if b is None else FormingBar(b.start, b.open, b.high, b.low, b.close, b.volume, b.last_minute),
            trades=[_trade_record(t) for t in self.trades],
        ))

    def history_snapshot(self) -> bytes:
        """The completed bars the strategy decides on (written once per bar)."""
        return _SNAPSHOT_ENCODER.encode(HistorySnapshot(bars={k: list(self._bars[k]) for k in _BARS}))

    def restore(self, snapshot: bytes | None, history: bytes | None) -> None:
        if snapshot is not None:
            snap = read_engine_snapshot(snapshot)
            self.engine.state[:] = _array(snap.state, STATE_FIELDS, self.engine.state)  # a fresh engine's defaults
            self.engine.orders[:] = core.new_orders()
            for k, order in enumerate(snap.orders):
                self.engine.orders[k] = _array(order, ORDER_FIELDS, self.engine.orders[k])
            self.engine.last_close = snap.last_close
            fb = snap.bucket
            self._bucket = None if fb is None else _Bucket(fb.start, fb.open, fb.high, fb.low, fb.close, fb.volume,
                                                           fb.last_minute)
            self.last_minute = snap.last_minute
            self.trades = [_trade_from_record(r) for r in snap.trades]
        if history is not None:
            bars = read_history_snapshot(history).bars
            self._bars = {k: [float(x) for x in bars.get(k, [])] for k in _BARS}


# --- the snapshot format ---------------------------------------------------------------------------------------
# Version 2: msgpack, every value under a name. The engine's state and order rows are keyed by the lower-cased
# names of their `core` index constants (S_CASH → "cash"), trades' exit reasons by name: reordering or adding
# fields in the engine, or reordering EXIT_REASONS, neither breaks a running deployment nor relabels its history.
# A name the engine doesn't know (any more) is dropped; one the snapshot lacks keeps the fresh engine's value.
# Version 1 (before this format existed) was an npz of the raw arrays; it is still read (`_read_v1`).
SNAPSHOT_FORMAT = 2


def _index_names(prefix: str, count: int) -> tuple[str, ...]:
    constants = [n for n in dir(core) if n.startswith(prefix) and isinstance(getattr(core, n), int)]
    names = {getattr(core, n): n[len(prefix):].lower() for n in constants}
    assert len(constants) == count and sorted(names) == list(range(count)), f"core.{prefix}* names each column once"
    return tuple(names[i] for i in range(count))


STATE_FIELDS = _index_names("S_", core.N_STATE)
ORDER_FIELDS = _index_names("O_", core.N_ORDER)


class FormingBar(msgspec.Struct, array_like=True):
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    last_minute: int


class TradeRecord(msgspec.Struct):
    side: Literal["long", "short"]
    entry_time: int
    exit_time: int
    entry_price: float
    exit_price: float
    size: float
    pnl: float
    fees: float
    funding: float
    exit_reason: str


class EngineSnapshot(msgspec.Struct):
    state: dict[str, float]
    orders: list[dict[str, float]]
    last_close: float
    last_minute: int | None
    bucket: FormingBar | None
    trades: list[TradeRecord]
    format: int = SNAPSHOT_FORMAT


class HistorySnapshot(msgspec.Struct):
    bars: dict[str, list[float]]
    format: int = SNAPSHOT_FORMAT


class _Versioned(msgspec.Struct):
    format: int = 0


class UnknownSnapshotFormat(ValueError):
    pass


_SNAPSHOT_ENCODER = msgspec.msgpack.Encoder()
_NPZ_MAGIC = b"PK"  # version 1: a zip archive


def _check_format(data: bytes) -> None:
    version = msgspec.msgpack.decode(data, type=_Versioned).format
    if version != SNAPSHOT_FORMAT:
        raise UnknownSnapshotFormat(f"snapshot format {version}; this version reads 1 and {SNAPSHOT_FORMAT}")


def read_engine_snapshot(data: bytes) -> EngineSnapshot:
    if data.startswith(_NPZ_MAGIC):
        return _read_v1(data)
    _check_format(data)
    return msgspec.msgpack.decode(data, type=EngineSnapshot)


def read_history_snapshot(data: bytes) -> HistorySnapshot:
    if data.startswith(_NPZ_MAGIC):
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            bars = z["bars"]
        return HistorySnapshot(bars={k: [float(x) for x in bars[i]] for i, k in enumerate(_BARS)})
    _check_format(data)
    return msgspec.msgpack.decode(data, type=HistorySnapshot)


# Version 1's layouts, frozen here: the engine's own constants may move on.
_V1_STATE = ("cash", "units", "entry_price", "entry_time", "entry_fees", "funding", "stop_price", "take_price",
             "watermark", "liq_price", "margin", "initial_cash", "equity", "sum_ret", "sum_ret2", "sum_down2",
             "peak_equity", "max_drawdown", "bars", "bars_in_market", "trades", "wins", "gross_profit",
             "gross_loss", "logged", "dropped", "fees_total", "funding_total", "next_order_id", "working_orders")
_V1_ORDER = ("active", "side", "type", "price", "units", "tif", "expires", "action", "id", "submitted")
_V1_EXIT_REASONS = ("order", "stop_loss", "take_profit", "trailing_stop", "liquidation")


def _read_v1(data: bytes) -> EngineSnapshot:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        state, orders, bucket, last, trades = z["state"], z["orders"], z["bucket"], z["last"], z["trades"]
        last_close = float(z["last_close"][0])
    return EngineSnapshot(
        state=_named(state, _V1_STATE),
        orders=[_named(row, _V1_ORDER) for row in orders if row[0] > 0],
        last_close=last_close,
        last_minute=int(last[0]) if len(last) else None,
        bucket=None if not len(bucket) else FormingBar(
            int(bucket[0]), float(bucket[1]), float(bucket[2]), float(bucket[3]), float(bucket[4]), float(bucket[5]),
            int(bucket[6]),
        ),
        trades=[_v1_trade(r) for r in trades],
        format=1,
    )


def _v1_trade(r: Any) -> TradeRecord:
    return TradeRecord(
        side="long" if r[0] > 0 else "short", entry_time=int(r[1]), exit_time=int(r[2]), entry_price=float(r[3]),
        exit_price=float(r[4]), size=float(r[5]), pnl=float(r[6]), fees=float(r[7]), funding=float(r[8]),
        exit_reason=_V1_EXIT_REASONS[int(r[9])],
    )


def _named(row: Any, names: tuple[str, ...]) -> dict[str, float]:
    return {name: float(row[i]) for i, name in enumerate(names)}


def _array(values: Mapping[str, float], names: tuple[str, ...], default: Any) -> Any:
    out = np.array(default, dtype=np.float64, copy=True)
    for i, name in enumerate(names):
        if name in values:
            out[i] = values[name]
    return out


def trades_in_snapshot(snapshot: bytes) -> list[Trade]:
    """A stored deployment's trades (closed, then the open one), read without running it."""
    snap = read_engine_snapshot(snapshot)
    closed = [_trade_from_record(r) for r in snap.trades]
    still_open = open_trade(_array(snap.state, STATE_FIELDS, core.new_state(0.0)), snap.last_close)
    return closed + ([still_open] if still_open else [])


def _trade_record(t: Trade) -> TradeRecord:
    return TradeRecord(t.side, int(t.entry_time), int(t.exit_time or 0), float(t.entry_price),
                       float(t.exit_price or 0.0), float(t.size), float(t.pnl), float(t.fees), float(t.funding),
                       t.exit_reason)


def _trade_from_record(r: TradeRecord) -> Trade:
    return Trade(side=r.side, entry_time=r.entry_time, exit_time=r.exit_time, entry_price=r.entry_price,
                 exit_price=r.exit_price, size=r.size, pnl=r.pnl, fees=r.fees, funding=r.funding,
                 exit_reason=r.exit_reason)
