"""The VolSpike volume-spike detector: pure (no I/O, no clock), fed candles and market rows, asked to `scan(t)`.

The rules (issue 2 part 6, the seed's "Volume Alerts System"), and how this code reads them:

* Scans run every 5 minutes aligned to the wall clock (:00, :05, … :55); `scan(t)` requires such a t.
* A scan at t evaluates the hour H that contains t, using only candles that CLOSED by t (a candle opened at o with
  interval d closes at o + d). The previous hour H−1 must be complete (every one of its minutes seen); until it is
  (a symbol just listed, a detector just started without history) the symbol raises nothing, rather than comparing
  against a partial hour. A previous hour that traded nothing is no baseline either: no alert.
* SPIKE when volume(H so far) ≥ ratio × volume(H−1) and ≥ min_quote_volume (USDT), at most once per symbol-hour.
  Consequences: the scan at H:00 sees nothing of H (its first minute closes at H:01), so it can't raise a SPIKE;
  the scan at H:05 sees H:00–H:04. The spike's *minute* is the minute of the scan that first raised it (5…55).
* Direction: bullish when the price > the hour's open (the open of its first candle), else bearish. The price is the
  latest market row's price when that row is newer than the last candle closed by t (and not newer than t: a
  restarted scanner catching up on past boundaries must not report today's price), else that candle's close.
* HALF_UPDATE at H:30 for a spike of hour H first raised at minute 0–20 inclusive (the seed's "XX:00–XX:20"; minute 0
  is unreachable with 1-minute candles, as above, so in practice :05, :10, :15 and :20), carrying H's volume so far.
* FULL_UPDATE at H+1:00 for every spike of hour H except one first raised at H:55 (its numbers would be only five
  minutes newer), carrying H's complete volume. Updates keep the spike's previous-hour volume as the baseline.
* Hourly candles (offline files): each hour is evaluated once, by the scan at its close (t = H+1:00), SPIKE only.

Memory is bounded: per symbol, the candles of the current and previous hour (one more while an hour turns) and the
spikes that may still need an update. A redelivered candle (at-least-once bus) replaces itself, it isn't added twice.

Scans are two-phase, so an alert the store never accepted is never marked as raised: `propose(t)` computes the alerts
and the state change without touching the state; the caller stores the alerts and only then `commit`s the proposal.
A failed write leaves the detector as it was, and proposing the same t again raises the same SPIKE (and its later
HALF/FULL updates come as in an uninterrupted run). `scan(t)` is propose + commit, for callers without a store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from marketpulse.detection.models import (
    AlertType,
    CandleDirection,
    VolumeAlert,
    alert_message,
)
from marketpulse.marketdata.intervals import HOUR_MS, MINUTE_MS, interval_ms
from marketpulse.marketdata.klines_csv import KlineColumns
from marketpulse.marketdata.models import Candle, MarketRow, asset_of

SCAN_EVERY_MS = 5 * MINUTE_MS
HALF_UPDATE_MINUTE = 30
HALF_UPDATE_LATEST_SPIKE_MINUTE = 20
NO_FULL_UPDATE_SPIKE_MINUTE = 55
QUOTE = "USDT"
_OFFLINE_CHUNK = 65_536


class _Bar:
    __slots__ = ("close", "close_time", "open", "quote_volume")

    def __init__(self, close_time: int, open_: float, close: float, quote_volume: float) -> None:
        self.close_time, self.open, self.close, self.quote_volume = close_time, open_, close, quote_volume


class _Hour:
    """One symbol's candles inside one clock hour, keyed by open time. (Plain slots class: the offline path
    builds a million of these hours and bars, and dataclass defaults cost more than the work.)"""

    __slots__ = ("bars", "covered_ms", "last_close_time", "total")

    def __init__(self) -> None:
        self.bars: dict[int, _Bar] = {}
        self.total = 0.0
        self.covered_ms = 0
        self.last_close_time = 0

    def add(self, open_time: int, bar: _Bar, step_ms: int) -> None:
        old = self.bars.get(open_time)
        if old is None:
            self.covered_ms += step_ms
        else:
            self.total -= old.quote_volume
        self.bars[open_time] = bar
        self.total += bar.quote_volume
        if bar.close_time > self.last_close_time:
            self.last_close_time = bar.close_time

    def complete(self) -> bool:
        return self.covered_ms >= HOUR_MS

    def volume_by(self, t: int) -> float:
        if self.last_close_time <= t:  # the usual case: nothing in this hour is from after t
            return self.total
        return sum(b.quote_volume for b in self.bars.values() if b.close_time <= t)

    def open_price(self, t: int) -> float | None:
        closed = [ot for ot, b in self.bars.items() if b.close_time <= t]
        return self.bars[min(closed)].open if closed else None

    def last_bar_by(self, t: int) -> _Bar | None:
        best: _Bar | None = None
        for bar in self.bars.values():
            if bar.close_time <= t and (best is None or bar.close_time > best.close_time):
                best = bar
        return best


@dataclass(slots=True)
class _Spike:
    minute: int  # minute of the hour at which the SPIKE was first raised
    previous_volume: float


@dataclass(slots=True)
class _Symbol:
    step_ms: int
    hours: dict[int, _Hour] = field(default_factory=dict)
    spikes: dict[int, _Spike] = field(default_factory=dict)  # by hour start
    newest_hour: int = 0

    def prune(self, keep_from_hour: int) -> None:
        for hour in [h for h in self.hours if h < keep_from_hour]:
            del self.hours[hour]
        if self.spikes:
            for hour in [h for h in self.spikes if h < keep_from_hour]:
                del self.spikes[hour]


@dataclass(frozen=True, slots=True)
class ScanProposal:
    """What the scan at `t_ms` would raise, and the spikes the detector records once the alerts are stored."""

    t_ms: int
    alerts: list[VolumeAlert]
    spikes: dict[tuple[str, int], _Spike]  # (symbol, hour start) -> the SPIKE first raised by this scan


@dataclass(frozen=True, slots=True)
class _Reading:
    """What a scan measured for one symbol-hour."""

    current: float
    previous: float
    price: float | None
    direction: CandleDirection

    @property
    def ratio(self) -> float:
        return self.current / self.previous


class VolumeSpikeDetector:
    def __init__(self, ratio: float = 3.0, min_quote_volume: float = 3_000_000.0) -> None:
        if ratio <= 0 or min_quote_volume < 0:
            raise ValueError("ratio must be > 0 and min_quote_volume >= 0")
        self.ratio = ratio
        self.min_quote_volume = min_quote_volume
        self._symbols: dict[str, _Symbol] = {}
        self._market: dict[str, MarketRow] = {}
        self._steps: dict[str, int] = {}

    # --- inputs ---------------------------------------------------------------------------------------------------

    def on_candle(self, candle: Candle) -> None:
        """A closed candle (open candles are ignored). Intervals that divide the hour: 1m…30m, 1h."""
        if not candle.closed:
            return
        step = self._steps.get(candle.interval)
        if step is None:
            step = self._steps[candle.interval] = interval_ms(candle.interval)
        self.add_bar(candle.symbol, candle.open_time, step, candle.open, candle.close, candle.quote_volume)

    def add_bar(
        self, symbol: str, open_time: int, step_ms: int, open_: float, close: float, quote_volume: float
    ) -> None:
        """`on_candle` without building a Candle (the offline path feeds a million of these)."""
        state = self._symbols.get(symbol)
        if state is None:
            if not symbol.endswith(QUOTE) or HOUR_MS % step_ms:
                return  # only USDT-quoted contracts; intervals that straddle hours can't be split into hours
            state = self._symbols[symbol] = _Symbol(step_ms)
        elif state.step_ms != step_ms:
            return  # one interval per symbol: the first one seen (sources publish one)
        hour = open_time - open_time % HOUR_MS
        bucket = state.hours.get(hour)
        if bucket is None:
            if hour < state.newest_hour - 2 * HOUR_MS:
                return  # too late to matter to any scan
            bucket = state.hours[hour] = _Hour()
            if hour > state.newest_hour:
                state.newest_hour = hour
                if len(state.hours) > 3:
                    state.prune(hour - 2 * HOUR_MS)  # bounded even when nobody scans
        bucket.add(open_time, _Bar(open_time + step_ms, open_, close, quote_volume), step_ms)

    def on_market_rows(self, rows: Iterable[MarketRow]) -> None:
        """Latest price and funding per symbol: one dict store per row, nothing else (it runs for every frame)."""
        market = self._market
        for row in rows:
            market[row.symbol] = row

    # --- the scan -------------------------------------------------------------------------------------------------

    def scan(self, t_ms: int) -> list[VolumeAlert]:
        """Alerts raised by the scan at wall time `t_ms` (a multiple of 5 minutes), sorted by symbol; committed."""
        proposal = self.propose(t_ms)
        self.commit(proposal)
        return proposal.alerts

    def propose(self, t_ms: int) -> ScanProposal:
        """The alerts the scan at `t_ms` raises, sorted by symbol; the detector's state is left untouched."""
        if t_ms % SCAN_EVERY_MS:
            raise ValueError(f"scan time {t_ms} is not on a 5-minute boundary")
        hour = t_ms - t_ms % HOUR_MS
        minute = (t_ms - hour) // MINUTE_MS
        proposal = ScanProposal(t_ms, [], {})
        for symbol in sorted(self._symbols):
            state = self._symbols[symbol]
            if state.step_ms < HOUR_MS:
                self._scan_minutes(proposal, symbol, state, hour, minute, t_ms)
            elif minute == 0:
                self._spike(proposal, symbol, state, hour - HOUR_MS, t_ms, 0)
        return proposal

    def commit(self, proposal: ScanProposal) -> None:
        """Record what `proposal` raised (call it once its alerts are stored) and forget hours no scan needs."""
        for (symbol, hour), spike in proposal.spikes.items():
            state = self._symbols.get(symbol)
            if state is not None:
                state.spikes.setdefault(hour, spike)
        keep_from = proposal.t_ms - proposal.t_ms % HOUR_MS - HOUR_MS
        for symbol in list(self._symbols):
            state = self._symbols[symbol]
            state.prune(keep_from)
            if not state.hours:
                del self._symbols[symbol]

    def restore_spike(self, symbol: str, hour_ms: int, minute: int, previous_volume: float) -> None:
        """Record a SPIKE raised before this detector existed (a restarted scanner reads them from the store), so
        its HALF/FULL updates still come. Ignored for symbols without candles: they get none anyway."""
        state = self._symbols.get(symbol)
        if state is not None:
            state.spikes.setdefault(hour_ms, _Spike(minute, previous_volume))

    def _scan_minutes(
        self, out: ScanProposal, symbol: str, state: _Symbol, hour: int, minute: int, t: int
    ) -> None:
        if minute == 0:
            self._update(out, "FULL_UPDATE", symbol, state, hour - HOUR_MS, t)
        if minute == HALF_UPDATE_MINUTE:
            self._update(out, "HALF_UPDATE", symbol, state, hour, t)
        self._spike(out, symbol, state, hour, t, minute)

    def _spike(self, out: ScanProposal, symbol: str, state: _Symbol, hour: int, t: int, minute: int) -> None:
        if hour in state.spikes:
            return
        previous, current = state.hours.get(hour - HOUR_MS), state.hours.get(hour)
        if previous is None or current is None or not previous.complete():
            return
        # Thresholds first, on plain numbers: most symbols don't spike, and they needn't pay for price and direction.
        if not self._is_spike(current.volume_by(t), previous.total):
            return
        reading = self._read(symbol, state, hour, t, previous.total)
        if reading is not None:
            out.spikes[symbol, hour] = _Spike(minute, reading.previous)
            out.alerts.append(self._alert(symbol, "SPIKE", reading, hour, t))

    def _update(self, out: ScanProposal, kind: AlertType, symbol: str, state: _Symbol, hour: int, t: int) -> None:
        spike = state.spikes.get(hour)
        if spike is None:
            return
        if kind == "HALF_UPDATE" and spike.minute > HALF_UPDATE_LATEST_SPIKE_MINUTE:
            return
        if kind == "FULL_UPDATE" and spike.minute == NO_FULL_UPDATE_SPIKE_MINUTE:
            return
        reading = self._read(symbol, state, hour, t, spike.previous_volume)
        if reading is not None:
            out.alerts.append(self._alert(symbol, kind, reading, hour, t))

    def _is_spike(self, current: float, previous: float) -> bool:
        return (
            previous > 0
            and current > 0
            and current >= self.min_quote_volume
            and current >= self.ratio * previous
        )

    def _read(self, symbol: str, state: _Symbol, hour: int, t: int, previous: float) -> _Reading | None:
        bucket = state.hours.get(hour)
        if bucket is None or previous <= 0:
            return None
        hour_open = bucket.open_price(t)
        last = bucket.last_bar_by(t)
        if hour_open is None or last is None:
            return None  # nothing of this hour has closed yet
        price = last.close
        row = self._market.get(symbol)
        if row is not None and last.close_time < row.time <= t:  # a price from after t: a catch-up scan's future
            price = row.price
        direction: CandleDirection = "bullish" if price > hour_open else "bearish"
        return _Reading(bucket.volume_by(t), previous, price, direction)

    def _alert(self, symbol: str, kind: AlertType, r: _Reading, hour: int, t: int) -> VolumeAlert:
        row = self._market.get(symbol)
        return VolumeAlert(
            symbol=symbol,
            asset=asset_of(symbol),
            current_volume=r.current,
            previous_volume=r.previous,
            volume_ratio=r.ratio,
            price=r.price,
            funding_rate=row.funding_rate if row is not None else None,
            candle_direction=r.direction,
            alert_type=kind,
            message=alert_message(symbol, kind, r.ratio, r.current, r.previous),
            timestamp=t,
            hour_timestamp=hour,
            is_update=kind != "SPIKE",
        )

    def tracked_symbols(self) -> int:
        return len(self._symbols)


def detect_offline(columns: KlineColumns, detector: VolumeSpikeDetector) -> Iterator[VolumeAlert]:
    """Replay a klines file through the detector as the live scanner would, yielding alerts in time order.

    Candles are fed in order of close time; before a candle that closes after boundary b is fed, the scan at b runs,
    so each scan sees exactly the candles closed by then. Minute files are scanned every 5 minutes; hourly files at
    each hour's close. Scans run from the first boundary at or after the first close to the last at or before the
    last close (data ending at 23:59 closes at 00:00, so that hour's FULL_UPDATEs are included).
    """
    if not len(columns):
        return
    step = interval_ms(columns.interval)
    scan_every = HOUR_MS if step >= HOUR_MS else SCAN_EVERY_MS
    order = columns.time.argsort(kind="stable")  # rows are by symbol; the simulation needs them by time
    names = columns.names
    boundary = -(-(int(columns.time[order[0]]) + step) // scan_every) * scan_every  # first boundary >= first close
    for start in range(0, len(order), _OFFLINE_CHUNK):
        # Python lists are what the per-candle loop wants, but a million rows of them cost ~0.5 GB: go by chunks.
        idx = order[start : start + _OFFLINE_CHUNK]
        times = columns.time[idx].tolist()
        symbols = [names[c] for c in columns.codes[idx].tolist()]
        opens, closes = columns.open[idx].tolist(), columns.close[idx].tolist()
        quotes = columns.quote_volume[idx].tolist()
        for i, open_time in enumerate(times):
            while boundary < open_time + step:
                yield from detector.scan(boundary)
                boundary += scan_every
            detector.add_bar(symbols[i], open_time, step, opens[i], closes[i], quotes[i])
    last_close = int(columns.time.max()) + step
    while boundary <= last_close:
        yield from detector.scan(boundary)
        boundary += scan_every
