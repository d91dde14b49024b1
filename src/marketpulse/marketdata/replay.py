"""The `replay` market source: real hourly candles played at an accelerated speed, minutes and ticks synthesized.

Layers, pure first:
- `HourlySeries`: one symbol's hourly candles (real, then synthetic once the file ends) with funding and open
  interest;
- `ReplayTape`: the market at any instant — closed 1-minute candles, 24h tickers, mark prices, open interest;
- `ReplayPlayer`: which bus events are due by a given market time (candles closed by t, ticks, 5-minute OI);
- `ReplaySource`: the thin adapter that sleeps on its clock and publishes the player's events.

When the file ends the replay **continues synthetically** instead of looping back: every symbol's series goes on
from its last real close with its own typical volume and volatility (see `synthetic.py`). Looping would make
market time jump backwards, which the detector's hour bookkeeping, the stored candles (same keys, different
values) and the history endpoint cannot take. Everything is a function of the settings (file, symbols, seed,
start), so two replays with the same settings publish the same candles.

On start the source publishes, at once, the previous full hour and the current hour so far as closed 1-minute
candles, so a detector has a previous hour at its first scan. The default start (`replay_start` unset) is 20
minutes before the hour in which most symbols of the file trade ≥3× their previous hour: 2025-10-10 20:40 UTC for
the bundled sample, whose 21:00 hour is the liquidation cascade. At 60× the first spikes are complete at the
21:10-21:20 scans, 30-40 real seconds after start. An injected clock (tests) decides the start itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from marketpulse.bus import EventBus, topics
from marketpulse.bus.topics import CandlesEvent, LiquidationsEvent, OpenInterestEvent, TickersEvent, Topic
from marketpulse.clock import Clock, ScaledClock
from marketpulse.marketdata.frame import F64, I64, CandleFrame
from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.klines_csv import read_kline_columns
from marketpulse.marketdata.liquidations import synthesize_liquidations
from marketpulse.marketdata.models import Candle, Liquidation, MarkPrice, Ticker24h
from marketpulse.marketdata.resample import Buckets
from marketpulse.marketdata.sample import usdm_perp_1h_path
from marketpulse.marketdata.synthetic import (
    HOUR_MS,
    MINUTE_MS,
    MinuteBars,
    SyntheticSpec,
    price_precision,
    synthesize_derivatives,
    synthesize_minutes,
    synthetic_hours,
    synthetic_universe,
    tick_price,
    volume_seasonality,
)
from marketpulse.marketdata.table import MarketTable
from marketpulse.metrics import INGEST_FRAMES
from marketpulse.settings import Settings
from marketpulse.times import datetime_ms

log = structlog.get_logger(__name__)

TICKS_PER_MINUTE = 4  # the table moves every 15 market seconds: 4×/s at 60×
TICK_MS = MINUTE_MS // TICKS_PER_MINUTE
OPEN_INTEREST_EVERY_MS = 5 * MINUTE_MS
FUNDING_EVERY_MS = 8 * HOUR_MS
SYNTHETIC_CHUNK_HOURS = 24 * 7
START_BEFORE_STRONG_HOUR_MS = 20 * MINUTE_MS

# (topic, payload): the payload is the topic's type (a heterogeneous list can't say which goes with which)
Event = tuple[Topic[Any], Any]


# --- one symbol's hours ----------------------------------------------------------------------------------------


@dataclass
class HourlySeries:
    """A symbol's contiguous hourly candles from its first hour on; synthetic hours are appended on demand."""

    symbol: str
    precision: int
    frame: CandleFrame
    quote_volume: F64
    funding_rate: F64
    open_interest_contracts: F64
    spec: SyntheticSpec  # how to continue once the data ends
    seed: int
    real_end_ms: int  # first hour that is synthetic
    _quote_prefix: F64 = field(init=False, repr=False)
    _volume_prefix: F64 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._refresh_prefixes()

    @classmethod
    def from_frame(cls, frame: CandleFrame, quote_volume: F64, *, seed: int) -> HourlySeries:
        steps = np.diff(frame.time)
        if len(steps) and not np.all(steps == HOUR_MS):
            raise ValueError(f"{frame.symbol}: hourly candles must be contiguous (a gap or a non-hourly step)")
        precision = price_precision(np.concatenate((frame.open, frame.high, frame.low, frame.close)))
        derivatives = synthesize_derivatives(frame, seed=seed)
        return cls(
            frame.symbol, precision, frame, quote_volume, derivatives.funding_rate,
            derivatives.open_interest_contracts, _continuation_spec(frame, quote_volume, precision), seed,
            int(frame.time[-1]) + HOUR_MS,
        )

    @classmethod
    def synthetic(cls, spec: SyntheticSpec, start_ms: int, *, seed: int) -> HourlySeries:
        frame = synthetic_hours(spec, start_ms, SYNTHETIC_CHUNK_HOURS, seed=seed)
        derivatives = synthesize_derivatives(frame, seed=seed)
        quote = frame.volume * frame.close
        return cls(
            spec.symbol, spec.precision, frame, quote, derivatives.funding_rate,
            derivatives.open_interest_contracts, spec, seed, start_ms,
        )

    @property
    def first_ms(self) -> int:
        return int(self.frame.time[0])

    def index(self, hour_ms: int) -> int | None:
        """Row of the hour opening at `hour_ms`; None before the symbol's first hour (not listed yet)."""
        if hour_ms < self.first_ms:
            return None
        while hour_ms >= int(self.frame.time[-1]) + HOUR_MS:
            self._extend()
        return (hour_ms - self.first_ms) // HOUR_MS

    def candle(self, i: int) -> Candle:
        f = self.frame
        return Candle(
            self.symbol, "1h", int(f.time[i]), float(f.open[i]), float(f.high[i]), float(f.low[i]),
            float(f.close[i]), float(f.volume[i]), float(self.quote_volume[i]),
        )

    def trailing_sum(self, i: int, hours: int, *, quote: bool) -> float:
        """Sum over the `hours` full hours before row i (fewer when the symbol is younger)."""
        prefix = self._quote_prefix if quote else self._volume_prefix
        return float(prefix[i] - prefix[max(i - hours, 0)])

    def _extend(self) -> None:
        f = self.frame
        spec = replace(self.spec, start_price=float(f.close[-1]))
        more = synthetic_hours(spec, int(f.time[-1]) + HOUR_MS, SYNTHETIC_CHUNK_HOURS, seed=self.seed)
        derivatives = synthesize_derivatives(
            more, seed=self.seed, start_funding=float(self.funding_rate[-1]),
            start_contracts=float(self.open_interest_contracts[-1]),
        )
        self.frame = CandleFrame(*_joined(f, more), symbol=self.symbol, interval="1h")
        self.quote_volume = np.concatenate((self.quote_volume, more.volume * more.close))
        self.funding_rate = np.concatenate((self.funding_rate, derivatives.funding_rate))
        self.open_interest_contracts = np.concatenate(
            (self.open_interest_contracts, derivatives.open_interest_contracts))
        self._refresh_prefixes()

    def _refresh_prefixes(self) -> None:
        self._quote_prefix = np.concatenate(([0.0], np.cumsum(self.quote_volume)))
        self._volume_prefix = np.concatenate(([0.0], np.cumsum(self.frame.volume)))


def _joined(a: CandleFrame, b: CandleFrame) -> tuple[I64, F64, F64, F64, F64, F64]:
    return (
        np.concatenate((a.time, b.time)), np.concatenate((a.open, b.open)), np.concatenate((a.high, b.high)),
        np.concatenate((a.low, b.low)), np.concatenate((a.close, b.close)), np.concatenate((a.volume, b.volume)),
    )


def _continuation_spec(frame: CandleFrame, quote_volume: F64, precision: int) -> SyntheticSpec:
    """Carry on like the symbol's own data: its deseasonalized median volume and robust hourly volatility."""
    returns = np.log(frame.close / frame.open)
    mad = float(np.median(np.abs(returns - np.median(returns)))) * 1.4826
    typical = float(np.median(quote_volume / volume_seasonality(frame.time)))
    return SyntheticSpec(frame.symbol, float(frame.close[-1]), typical, min(max(mad, 0.003), 0.05), precision)


# --- the market at an instant ----------------------------------------------------------------------------------


class ReplayTape:
    """The replayed market: hourly series per symbol, minutes synthesized (and cached) on demand."""

    def __init__(self, series: Iterable[HourlySeries], *, seed: int, strongest_hour_ms: int | None = None) -> None:
        self.series = {s.symbol: s for s in series}
        self.seed = seed
        self._strongest_hour_ms = strongest_hour_ms if strongest_hour_ms is not None else strongest_hour(
            (s.frame.time[s.frame.time < s.real_end_ms], s.quote_volume[s.frame.time < s.real_end_ms])
            for s in self.series.values()
        )
        self._bars: dict[tuple[str, int], MinuteBars] = {}
        self._liquidations: dict[tuple[str, int], list[list[Liquidation]]] = {}
        self._windows: dict[tuple[str, int], _DayWindow] = {}

    @classmethod
    def load(cls, path: Path, *, symbols: int, seed: int) -> ReplayTape:
        """The `symbols` most liquid symbols of a klines file (mean hourly quote volume), then made-up ones."""
        columns = read_kline_columns(path)
        candidates: list[tuple[CandleFrame, F64]] = []
        for name, start, stop in columns.symbol_runs():
            frame = CandleFrame(
                columns.time[start:stop], columns.open[start:stop], columns.high[start:stop],
                columns.low[start:stop], columns.close[start:stop], columns.volume[start:stop], name, columns.interval,
            )
            quote = columns.quote_volume[start:stop]
            candidates.append(hourly_from(frame, quote) if columns.interval != "1h" else (frame, quote))
        # The strongest hour is judged on the whole file, so the default start does not move with replay_symbols.
        strongest = strongest_hour((frame.time, quote) for frame, quote in candidates)
        candidates.sort(key=lambda fq: (-float(np.mean(fq[1])), fq[0].symbol))
        chosen = [HourlySeries.from_frame(frame, quote, seed=seed) for frame, quote in candidates[:symbols]]
        if len(chosen) < symbols:
            start_ms = min(s.first_ms for s in chosen) if chosen else 0
            specs = synthetic_universe(symbols - len(chosen), seed=seed)
            chosen += [HourlySeries.synthetic(spec, start_ms, seed=seed) for spec in specs]
        return cls(chosen, seed=seed, strongest_hour_ms=strongest)

    @property
    def symbols(self) -> list[str]:
        return list(self.series)

    def first_hour_ms(self) -> int:
        return min(s.first_ms for s in self.series.values())

    def precisions(self) -> dict[str, int]:
        return {sym: s.precision for sym, s in self.series.items()}

    def strongest_hour_ms(self) -> int:
        """The hour of the data in which the most symbols traded ≥3× their previous hour's quote volume."""
        return self._strongest_hour_ms

    def minute_bars(self, symbol: str, hour_ms: int) -> MinuteBars | None:
        key = (symbol, hour_ms)
        if (bars := self._bars.get(key)) is None:
            series = self.series[symbol]
            i = series.index(hour_ms)
            if i is None:
                return None
            bars = synthesize_minutes(series.candle(i), seed=self.seed, precision=series.precision)
            self._bars[key] = bars
        return bars

    def forget_before(self, hour_ms: int) -> None:
        """Drop cached minutes older than `hour_ms` (the tickers look back 24 h, nothing looks further)."""
        for key in [k for k in self._bars if k[1] < hour_ms]:
            del self._bars[key]
        for key in [k for k in self._windows if k[1] < hour_ms]:
            del self._windows[key]
        for key in [k for k in self._liquidations if k[1] < hour_ms]:
            del self._liquidations[key]

    def closed_minute(self, minute_ms: int) -> list[Candle]:
        """Every symbol's 1-minute candle opening at `minute_ms` (symbols not listed yet are absent)."""
        hour_ms, minute = _split(minute_ms)
        candles = []
        for symbol in self.series:
            if (bars := self.minute_bars(symbol, hour_ms)) is not None:
                candles.append(bars.candle(minute))
        return candles

    def liquidations(self, minute_ms: int) -> list[Liquidation]:
        """Every symbol's synthesized liquidations in the minute opening at `minute_ms`, oldest first."""
        hour_ms, minute = _split(minute_ms)
        out: list[Liquidation] = []
        for symbol, series in self.series.items():
            key = (symbol, hour_ms)
            if (per_minute := self._liquidations.get(key)) is None:
                if (bars := self.minute_bars(symbol, hour_ms)) is None:
                    continue
                per_minute = synthesize_liquidations(bars, seed=self.seed, precision=series.precision)
                self._liquidations[key] = per_minute
            out += per_minute[minute]
        out.sort(key=lambda liq: liq.time)
        return out

    def tickers(self, t_ms: int) -> list[Ticker24h]:
        return [t for symbol in self.series if (t := self._ticker(symbol, t_ms)) is not None]

    def mark_prices(self, t_ms: int) -> list[MarkPrice]:
        marks = []
        next_funding = (t_ms // FUNDING_EVERY_MS + 1) * FUNDING_EVERY_MS
        for symbol in self.series:
            if (window := self._window(symbol, t_ms // HOUR_MS * HOUR_MS)) is not None:
                price = window.price(*_position(t_ms))
                marks.append(MarkPrice(symbol, t_ms, price, price, window.funding_rate, next_funding))
        return marks

    def open_interest_usd(self, t_ms: int) -> dict[str, float]:
        usd = {}
        for symbol in self.series:
            if (window := self._window(symbol, t_ms // HOUR_MS * HOUR_MS)) is not None:
                usd[symbol] = round(window.open_interest_contracts * window.price(*_position(t_ms)), 2)
        return usd

    def price(self, symbol: str, t_ms: int) -> float | None:
        window = self._window(symbol, t_ms // HOUR_MS * HOUR_MS)
        return None if window is None else window.price(*_position(t_ms))

    def _ticker(self, symbol: str, t_ms: int) -> Ticker24h | None:
        window = self._window(symbol, t_ms // HOUR_MS * HOUR_MS)
        return None if window is None else window.ticker(t_ms)

    def _window(self, symbol: str, hour_ms: int) -> _DayWindow | None:
        """What the 24h ticker needs during one hour, computed once per symbol-hour (ticks then cost O(1))."""
        key = (symbol, hour_ms)
        if (window := self._windows.get(key)) is None:
            series = self.series[symbol]
            i = series.index(hour_ms)
            bars = self.minute_bars(symbol, hour_ms)
            if i is None or bars is None:
                return None
            window = _DayWindow.of(series, i, bars, self.minute_bars(symbol, hour_ms - 24 * HOUR_MS))
            self._windows[key] = window
        return window


@dataclass(frozen=True)
class _MinuteColumns:
    """One hour's minutes as Python lists, with prefix sums (index m = the sum over minutes before m)."""

    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    quote: list[float]
    volume_before: list[float]
    quote_before: list[float]

    @classmethod
    def of(cls, bars: MinuteBars) -> _MinuteColumns:
        return cls(
            bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.close.tolist(), bars.volume.tolist(),
            bars.quote_volume.tolist(), np.concatenate(([0.0], np.cumsum(bars.volume))).tolist(),
            np.concatenate(([0.0], np.cumsum(bars.quote_volume))).tolist(),
        )

    def price(self, minute: int, fraction: float, precision: int) -> float:
        m = minute
        return round(tick_price(self.open[m], self.high[m], self.low[m], self.close[m], fraction), precision)


@dataclass(frozen=True)
class _DayWindow:
    """The rolling 24 h around one hour H: the 23 full hours before it, H's minutes and the minutes of H − 24 h."""

    symbol: str
    precision: int
    now: _MinuteColumns
    day_ago: _MinuteColumns | None
    first_open: float  # a symbol younger than a day measures its change from its first price
    full_hours_volume: float
    full_hours_quote: float
    full_hours_high: float
    full_hours_low: float
    high_before: list[float]  # running max of this hour's minute highs before minute m
    low_before: list[float]
    funding_rate: float
    open_interest_contracts: float

    @classmethod
    def of(cls, series: HourlySeries, i: int, bars: MinuteBars, day_ago: MinuteBars | None) -> _DayWindow:
        f, lo = series.frame, max(i - 23, 0)
        return cls(
            series.symbol, series.precision, _MinuteColumns.of(bars),
            None if day_ago is None else _MinuteColumns.of(day_ago), float(f.open[0]),
            series.trailing_sum(i, 23, quote=False), series.trailing_sum(i, 23, quote=True),
            float(np.max(f.high[lo:i], initial=-np.inf)), float(np.min(f.low[lo:i], initial=np.inf)),
            np.maximum.accumulate(np.concatenate(([-np.inf], bars.high))).tolist(),
            np.minimum.accumulate(np.concatenate(([np.inf], bars.low))).tolist(),
            float(series.funding_rate[i]), float(series.open_interest_contracts[i]),
        )

    def price(self, minute: int, fraction: float) -> float:
        return self.now.price(minute, fraction, self.precision)

    def ticker(self, t_ms: int) -> Ticker24h:
        minute, fraction = _position(t_ms)
        last = self.price(minute, fraction)
        old = self.day_ago
        open_price = self.first_open if old is None else old.price(minute, fraction, self.precision)
        high = max(self.full_hours_high, self.high_before[minute], last)
        low = min(self.full_hours_low, self.low_before[minute], last)
        volume, quote = self._rolling(minute, fraction)
        change = round((last - open_price) / open_price * 100, 3)
        return Ticker24h(self.symbol, t_ms, last, open_price, high, low, change, volume, quote)

    def _rolling(self, minute: int, fraction: float) -> tuple[float, float]:
        """Volumes over (t − 24 h, t]: the 23 full hours, this hour so far (the current minute pro rata), and the
        rest of the hour 24 h ago from the same instant on."""
        now, old, m = self.now, self.day_ago, minute
        volume = self.full_hours_volume + now.volume_before[m] + fraction * now.volume[m]
        quote = self.full_hours_quote + now.quote_before[m] + fraction * now.quote[m]
        if old is not None:
            volume += (1 - fraction) * old.volume[m] + old.volume_before[-1] - old.volume_before[m + 1]
            quote += (1 - fraction) * old.quote[m] + old.quote_before[-1] - old.quote_before[m + 1]
        return round(volume, 6), round(quote, 2)


def strongest_hour(series: Iterable[tuple[I64, F64]]) -> int:
    """Of (hour open times, quote volumes) per symbol: the hour in which the most symbols trade ≥3× their previous
    hour's quote volume (the earliest on ties)."""
    counts: dict[int, int] = {}
    first = None
    for time, quote in series:
        first = int(time[0]) if first is None else min(first, int(time[0]))
        for t in time[1:][quote[1:] >= 3 * np.maximum(quote[:-1], 1e-9)].tolist():
            counts[t] = counts.get(t, 0) + 1
    if not counts:
        return (first or 0) + HOUR_MS
    return max(counts, key=lambda t: (counts[t], -t))


def _split(t_ms: int) -> tuple[int, int]:
    hour_ms = t_ms // HOUR_MS * HOUR_MS
    return hour_ms, (t_ms - hour_ms) // MINUTE_MS


def _position(t_ms: int) -> tuple[int, float]:
    """(minute of the hour, fraction of that minute elapsed) at `t_ms`."""
    return (t_ms % HOUR_MS) // MINUTE_MS, (t_ms % MINUTE_MS) / MINUTE_MS


def hourly_from(frame: CandleFrame, quote_volume: F64) -> tuple[CandleFrame, F64]:
    """Aggregate finer candles (e.g. the BTCUSDT minute file) into hours with the library's `Buckets`; incomplete
    hours are dropped."""
    hours = Buckets(frame.time, Interval.parse(frame.interval), Interval.H1)
    complete = np.flatnonzero(hours.complete)
    return hours.frame(frame).take(complete), hours.sum(quote_volume)[complete]


# --- which events are due --------------------------------------------------------------------------------------


class ReplayPlayer:
    """Turns market time into bus events (pure; the source only sleeps and publishes).

    Order at a minute boundary t: the candles of the minute that closed at t, the liquidations synthesized in that
    minute, then open interest when t is a 5-minute mark, then the tickers at t. So anything scanning at t finds
    every candle that closed by t.
    """

    def __init__(self, tape: ReplayTape) -> None:
        self.tape = tape
        self.table = MarketTable(tape.precisions())
        self._next_close_ms = 0  # end of the next minute whose candles are due
        self._next_tick_ms = 0

    def start(self, now_ms: int) -> list[Event]:
        """History first, published at once: every minute of the previous hour and of this hour so far."""
        first_minute = now_ms // HOUR_MS * HOUR_MS - HOUR_MS
        self._next_close_ms = first_minute + MINUTE_MS
        events = self._closed_minutes(now_ms)
        if now_ms % OPEN_INTEREST_EVERY_MS:  # on a 5-minute mark the closed minutes just carried it
            events.append(self._open_interest(now_ms // MINUTE_MS * MINUTE_MS))
        events.append(self._tickers(now_ms // TICK_MS * TICK_MS))
        self._next_tick_ms = now_ms // TICK_MS * TICK_MS + TICK_MS
        return events

    def next_wakeup_ms(self) -> int:
        return min(self._next_tick_ms, self._next_close_ms)

    def advance(self, now_ms: int) -> list[Event]:
        """Everything due by `now_ms`: closed minutes (never skipped) and the latest tick (stale ones skipped)."""
        events = self._closed_minutes(now_ms)
        if now_ms >= self._next_tick_ms:
            tick_ms = now_ms // TICK_MS * TICK_MS
            events.append(self._tickers(tick_ms))
            self._next_tick_ms = tick_ms + TICK_MS
        return events

    def _closed_minutes(self, now_ms: int) -> list[Event]:
        events: list[Event] = []
        while self._next_close_ms <= now_ms:
            close_ms = self._next_close_ms
            candles = self.tape.closed_minute(close_ms - MINUTE_MS)
            events.append((topics.MARKET_CANDLES, CandlesEvent(list(candles))))
            if liquidations := self.tape.liquidations(close_ms - MINUTE_MS):
                events.append((topics.MARKET_LIQUIDATIONS, LiquidationsEvent(liquidations)))
            if close_ms % OPEN_INTEREST_EVERY_MS == 0:
                events.append(self._open_interest(close_ms))
            if close_ms % HOUR_MS == 0:
                self.tape.forget_before(close_ms - 25 * HOUR_MS)
            self._next_close_ms += MINUTE_MS
        return events

    def _open_interest(self, t_ms: int) -> Event:
        usd = self.tape.open_interest_usd(t_ms)
        self.table.apply_open_interest(usd)
        return topics.MARKET_OPEN_INTEREST, OpenInterestEvent(t_ms, usd)

    def _tickers(self, t_ms: int) -> Event:
        self.table.apply_mark_prices(self.tape.mark_prices(t_ms))
        rows = self.table.apply_tickers(self.tape.tickers(t_ms))
        return topics.MARKET_TICKERS, TickersEvent(t_ms, list(rows))


# --- the source ------------------------------------------------------------------------------------------------


def replay_start_ms(settings: Settings, tape: ReplayTape) -> int:
    """`settings.replay_start`, else 20 minutes before the data's strongest hour (a spike within 2 real minutes)."""
    if settings.replay_start is not None:
        start_ms = datetime_ms(settings.replay_start)  # naive means UTC
    else:
        start_ms = tape.strongest_hour_ms() - START_BEFORE_STRONG_HOUR_MS
    earliest = tape.first_hour_ms() + HOUR_MS
    if start_ms < earliest:
        raise ValueError(f"replay_start is before the replayed data allows (earliest {earliest} ms: one hour of "
                         "history is needed)")
    return start_ms


class ReplaySource:
    """`MarketSource` "replay". Its clock runs `settings.replay_speed`× market time from the start."""

    name = "replay"

    def __init__(self, settings: Settings, clock: Clock | None = None, *, tape: ReplayTape | None = None) -> None:
        self.settings = settings
        self.tape = tape or ReplayTape.load(
            settings.replay_file or usdm_perp_1h_path(), symbols=settings.replay_symbols, seed=settings.replay_seed
        )
        self.start_ms = replay_start_ms(settings, self.tape)
        self.clock: Clock = clock or ScaledClock(self.start_ms, settings.replay_speed)

    async def run(self, bus: EventBus) -> None:
        player = ReplayPlayer(self.tape)
        now = self.clock.now_ms()
        log.info("replay starting", market_time=now, symbols=len(self.tape.series), speed=self.settings.replay_speed)
        await _publish(bus, player.start(now))
        while True:
            await self.clock.sleep_until(player.next_wakeup_ms())
            await _publish(bus, player.advance(self.clock.now_ms()))


async def _publish(bus: EventBus, events: list[Event]) -> None:
    for topic, data in events:
        await bus.publish(topic, data)
    INGEST_FRAMES.labels(source="replay").inc(len(events))

