"""Market data → the engine's keys: ticker rows, closed candles, derived changes and indicators. Pure: no I/O.

- ticker rows (`market.tickers`) update `price`, `change_pct_24h`, `quote_volume_24h`, `funding_rate`,
  `open_interest_usd` for every symbol of the batch at once, then the derived `pct(F,W)` keys: the change against
  the value W ago, from a ring of one sample per minute per symbol (vectorized over symbols);
- closed candles (`market.candles`, 1m) are summed into hourly quote volumes (`volume_ratio_1h`) and into bars of
  every interval a rule uses; when a bar closes, its indicators (`rsi(14)@1h` …, from `marketpulse.indicators` on
  the closed bars) and the `@interval` copies that `once_per_bar_close` rules read are updated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from marketpulse import indicators
from marketpulse.marketdata.intervals import MINUTE_MS, MS_BY_NAME
from marketpulse.marketdata.models import Candle, MarketRow
from marketpulse.rules.engine import Match, Matches, RuleEngine

F64 = npt.NDArray[np.float64]
TICK_FIELDS = ("price", "change_pct_24h", "quote_volume_24h", "funding_rate", "open_interest_usd")
HISTORY_BARS = 600  # closed bars kept per symbol and interval for indicators (RSI/EMA settle well within this)
_PCT = re.compile(r"^pct\(([a-z_0-9]+),(\w+)\)$")
_INDICATOR = re.compile(r"^(\w+)\((\d+)(?:,([\d.]+))?\)$")


class _Ring:
    """One sample per minute per symbol for a window of W minutes: the value W minutes ago."""

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self.size = minutes + 1
        self.vals = np.full((self.size, 0), np.nan)
        self.stamp = np.full((self.size, 0), -1, np.int64)

    def _fit(self, width: int) -> None:
        if self.vals.shape[1] < width:
            grow = max(width, 2 * self.vals.shape[1], 64) - self.vals.shape[1]
            self.vals = np.pad(self.vals, ((0, 0), (0, grow)), constant_values=np.nan)
            self.stamp = np.pad(self.stamp, ((0, 0), (0, grow)), constant_values=-1)

    def change_pct(self, minute: int, syms: npt.NDArray[np.int32], vals: F64) -> F64:
        self._fit(int(syms.max(initial=-1)) + 1)
        slot = minute % self.size
        self.vals[slot, syms] = vals
        self.stamp[slot, syms] = minute
        then = (minute - self.minutes) % self.size
        ref = np.where(self.stamp[then, syms] == minute - self.minutes, self.vals[then, syms], np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = (vals / ref - 1.0) * 100.0
        return np.where(np.isfinite(pct), pct, np.nan)


@dataclass
class _Bars:
    """Closed bars of one interval per symbol (for indicators), and the bar being built from 1m candles."""

    step: int
    high: dict[int, list[float]] = field(default_factory=dict)
    low: dict[int, list[float]] = field(default_factory=dict)
    close: dict[int, list[float]] = field(default_factory=dict)
    building: dict[int, list[float]] = field(default_factory=dict)  # [open_time, high, low, close]

    def add(self, sym: int, c: Candle) -> bool:
        """Fold a candle (of this interval or a finer one) in; True when it closes its bar."""
        start = c.open_time - c.open_time % self.step
        bar = self.building.get(sym)
        if bar is None or bar[0] != start:
            bar = self.building[sym] = [start, c.high, c.low, c.close]
        else:
            bar[1], bar[2], bar[3] = max(bar[1], c.high), min(bar[2], c.low), c.close
        if (c.open_time + MS_BY_NAME[c.interval]) % self.step:
            return False
        for series, value in ((self.high, bar[1]), (self.low, bar[2]), (self.close, bar[3])):
            kept = series.setdefault(sym, [])
            kept.append(value)
            del kept[:-HISTORY_BARS]
        del self.building[sym]
        return True


class MarketFeed:
    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine
        self._rings: dict[tuple[str, int], _Ring] = {}
        self._bars: dict[str, _Bars] = {}
        self._hour_volume: dict[int, tuple[int, float, float]] = {}  # sym → (hour, this hour, previous hour)

    # --- ticks -----------------------------------------------------------------------------------------------------

    def on_tickers(self, now_ms: int, rows: Sequence[MarketRow]) -> list[Matches]:
        if not rows:
            return []
        syms = np.fromiter((self.engine.symbol(r.symbol) for r in rows), np.int32, len(rows))
        columns = {
            "price": [r.price for r in rows], "change_pct_24h": [r.change_pct_24h for r in rows],
            "quote_volume_24h": [r.quote_volume_24h for r in rows],
            "funding_rate": [np.nan if r.funding_rate is None else r.funding_rate for r in rows],
            "open_interest_usd": [np.nan if r.open_interest_usd is None else r.open_interest_usd for r in rows],
        }
        return self.on_values(now_ms, syms, {k: np.asarray(v, np.float64) for k, v in columns.items()})

    def on_values(self, now_ms: int, syms: npt.NDArray[np.int32], columns: dict[str, F64]) -> list[Matches]:
        """Tick fields of many symbols at once (what `on_tickers` builds; the benchmark calls it directly)."""
        out = [self.engine.update(k, now_ms, syms, v) for k, v in columns.items()]
        minute = now_ms // MINUTE_MS
        for key in self._pct_keys():
            base, window = _PCT.match(key).groups()  # type: ignore[union-attr]
            if base in columns:
                ring = self._rings.setdefault((base, MS_BY_NAME[window] // MINUTE_MS),
                                              _Ring(MS_BY_NAME[window] // MINUTE_MS))
                out.append(self.engine.update(key, now_ms, syms, ring.change_pct(minute, syms, columns[base])))
        return out

    def _pct_keys(self) -> set[str]:
        """The derived keys some rule reads, directly or through a bar-close copy."""
        return {k.split("@")[0] for k in self.engine.keys_in_use() if k.startswith("pct(")}

    # --- candles ---------------------------------------------------------------------------------------------------

    def on_candles(self, candles: Sequence[Candle]) -> list[Match]:
        """Closed candles (1m on the bus; a preview may replay coarser ones): each is folded into the bars of the
        intervals rules use that it divides."""
        out: list[Match] = []
        closed: dict[str, list[tuple[int, int]]] = {}  # interval → (sym, close time) of bars closed now
        intervals = self._intervals()
        for c in candles:
            step = MS_BY_NAME[c.interval]
            if not c.closed:
                continue
            sym = self.engine.symbol(c.symbol)
            if step <= 3_600_000:
                out += self._volume_ratio(sym, c)
            for name in intervals:
                if MS_BY_NAME[name] % step:
                    continue
                bars = self._bars.setdefault(name, _Bars(MS_BY_NAME[name]))
                if bars.add(sym, c):
                    closed.setdefault(name, []).append((sym, c.open_time + step))
        for name, done in closed.items():
            out += self._bar_closed(name, done)
        return out

    def _intervals(self) -> set[str]:
        return {k.rsplit("@", 1)[1] for k in self.engine.keys_in_use() if "@" in k}

    def _volume_ratio(self, sym: int, c: Candle) -> list[Match]:
        hour = c.open_time - c.open_time % 3_600_000
        last_hour, this, previous = self._hour_volume.get(sym, (hour, 0.0, float("nan")))
        if hour != last_hour:
            this, previous = 0.0, this if hour - last_hour == 3_600_000 else float("nan")
        this += c.quote_volume
        self._hour_volume[sym] = (hour, this, previous)
        if "volume_ratio_1h" not in self.engine.index or not previous > 0:
            return []
        at = c.open_time + MS_BY_NAME[c.interval]
        return list(self.engine.update("volume_ratio_1h", at, np.array([sym], np.int32), np.array([this / previous])))

    def _bar_closed(self, interval: str, done: list[tuple[int, int]]) -> list[Match]:
        out: list[Match] = []
        bars = self._bars[interval]
        suffix = f"@{interval}"
        keys = [k for k in self.engine.keys_in_use() if k.endswith(suffix)]
        for key in keys:
            base = key[: -len(suffix)]
            for sym, close_ms in done:
                value = self._bar_value(base, bars, sym)
                out += self.engine.update(key, close_ms, np.array([sym], np.int32), np.array([value]))
        return out

    def _bar_value(self, base: str, bars: _Bars, sym: int) -> float:
        if base == "price":
            return bars.close[sym][-1]
        found = _INDICATOR.match(base)
        if found and found.group(1) in INDICATOR_NAMES:
            return indicator_value(found.group(1), int(found.group(2)), float(found.group(3) or 2.0),
                                   bars.high[sym], bars.low[sym], bars.close[sym])
        store = self.engine.values.get(base)  # a tick key's latest value, as the bar closes
        return float(store[sym]) if store is not None and sym < len(store) else float("nan")


INDICATOR_NAMES = ("rsi", "ema", "sma", "atr", "bb_upper", "bb_middle", "bb_lower")


def indicator_value(name: str, period: int, mult: float, high: Sequence[float], low: Sequence[float],
                    close: Sequence[float]) -> float:
    """The indicator's value on the newest closed bar (NaN while it warms up)."""
    c = np.asarray(close, np.float64)
    if name == "rsi":
        series = indicators.rsi(c, period)
    elif name == "ema":
        series = indicators.ema(c, period)
    elif name == "sma":
        series = indicators.sma(c, period)
    elif name == "atr":
        series = indicators.atr(np.asarray(high, np.float64), np.asarray(low, np.float64), c, period)
    else:
        upper, middle, lower = indicators.bollinger(c, period, mult)
        series = {"bb_upper": upper, "bb_middle": middle, "bb_lower": lower}[name]
    return float(series[-1]) if len(series) else float("nan")
