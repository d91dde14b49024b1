"""Pure: which indicator studies a chart asks for ("ema:20,bb:20:2,rsi"), their series over candle columns, and
merging the library's candles with the store's.

A study's series are `[time, value]` pairs, `value` None where the indicator is warming up or (SuperTrend) the
line belongs to the other direction, so the browser draws gaps instead of joining unrelated points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from marketpulse import indicators as ta
from marketpulse.marketdata.models import Candle

F64 = npt.NDArray[np.float64]
MAX_STUDIES = 12


@dataclass(frozen=True, slots=True)
class Columns:
    time: npt.NDArray[np.int64]
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    @classmethod
    def of(cls, candles: Sequence[Candle]) -> Columns:
        def col(name: str) -> F64:
            return np.fromiter((getattr(c, name) for c in candles), dtype=np.float64, count=len(candles))

        time = np.fromiter((c.open_time for c in candles), dtype=np.int64, count=len(candles))
        return cls(time, col("open"), col("high"), col("low"), col("close"), col("volume"))


@dataclass(frozen=True, slots=True)
class StudyKind:
    pane: str  # "price" overlays the candles; anything else is a pane of its own
    defaults: tuple[float, ...]
    integer: tuple[bool, ...]  # which parameters are periods (whole numbers >= 1)
    compute: Callable[[Columns, tuple[float, ...]], dict[str, Any]]


def _lines(**series: F64) -> dict[str, Any]:
    return {"lines": series, "markers": []}


def _supertrend(c: Columns, p: tuple[float, ...]) -> dict[str, Any]:
    line, direction = ta.supertrend(c.high, c.low, c.close, int(p[0]), p[1])
    # TradingView's convention: -1 = uptrend (line under price, green), +1 = downtrend (line over price, red).
    return _lines(up=np.where(direction == -1, line, np.nan), down=np.where(direction == 1, line, np.nan))


def _ut_bot(c: Columns, p: tuple[float, ...]) -> dict[str, Any]:
    stop, buy, sell = ta.ut_bot(c.open, c.high, c.low, c.close, p[0], int(p[1]))
    markers = [{"time": int(t), "side": "buy"} for t in c.time[buy]]
    markers += [{"time": int(t), "side": "sell"} for t in c.time[sell]]
    return {"lines": {"stop": stop}, "markers": sorted(markers, key=lambda m: m["time"])}


def _bollinger(c: Columns, p: tuple[float, ...]) -> dict[str, Any]:
    upper, middle, lower = ta.bollinger(c.close, int(p[0]), p[1])
    return _lines(upper=upper, middle=middle, lower=lower)


def _macd(c: Columns, p: tuple[float, ...]) -> dict[str, Any]:
    line, signal, hist = ta.macd(c.close, int(p[0]), int(p[1]), int(p[2]))
    return _lines(macd=line, signal=signal, histogram=hist)


KINDS: dict[str, StudyKind] = {
    "ema": StudyKind("price", (20,), (True,), lambda c, p: _lines(ema=ta.ema(c.close, int(p[0])))),
    "sma": StudyKind("price", (50,), (True,), lambda c, p: _lines(sma=ta.sma(c.close, int(p[0])))),
    "bb": StudyKind("price", (20, 2.0), (True, False), _bollinger),
    "supertrend": StudyKind("price", (10, 3.0), (True, False), _supertrend),
    "utbot": StudyKind("price", (1.0, 10), (False, True), _ut_bot),
    "rsi": StudyKind("rsi", (14,), (True,), lambda c, p: _lines(rsi=ta.rsi(c.close, int(p[0])))),
    "macd": StudyKind("macd", (12, 26, 9), (True, True, True), _macd),
    "atr": StudyKind("atr", (14,), (True,), lambda c, p: _lines(atr=ta.atr(c.high, c.low, c.close, int(p[0])))),
}


@dataclass(frozen=True, slots=True)
class Study:
    kind: str
    params: tuple[float, ...]

    @property
    def id(self) -> str:
        return ":".join([self.kind, *(f"{p:g}" for p in self.params)])


def parse_studies(text: str) -> list[Study]:
    """"ema:20,bb:20:2,rsi" → studies (missing parameters take their defaults); ValueError says what is wrong."""
    studies: list[Study] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        name, *args = raw.lower().split(":")
        kind = KINDS.get(name)
        if kind is None:
            raise ValueError(f"unknown study {name!r}; one of {', '.join(KINDS)}")
        if len(args) > len(kind.defaults):
            raise ValueError(f"{name} takes at most {len(kind.defaults)} parameter(s), got {raw!r}")
        studies.append(Study(name, _params(name, args, kind)))
    if len(studies) > MAX_STUDIES:
        raise ValueError(f"at most {MAX_STUDIES} studies, got {len(studies)}")
    return list(dict.fromkeys(studies))  # the same study twice is drawn once


def _params(name: str, args: list[str], kind: StudyKind) -> tuple[float, ...]:
    values = list(kind.defaults)
    for i, arg in enumerate(args):
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(f"{name}: parameter {i + 1} must be a number, got {arg!r}") from None
        if not np.isfinite(value) or value < 0 or (kind.integer[i] and (value < 1 or value != int(value))):
            kind_of = "a whole number >= 1" if kind.integer[i] else "a finite number >= 0"
            raise ValueError(f"{name}: parameter {i + 1} must be {kind_of}, got {arg!r}")
        if kind.integer[i] and value > 1000:
            raise ValueError(f"{name}: period {arg} is over 1000")
        values[i] = value
    return tuple(values)


def compute(columns: Columns, studies: Sequence[Study]) -> list[dict[str, Any]]:
    """Each study's series over the candles, as the wire sends them."""
    out = []
    for study in studies:
        kind = KINDS[study.kind]
        result = kind.compute(columns, study.params)
        lines = [{"name": name, "points": _points(columns.time, values)} for name, values in result["lines"].items()]
        out.append({"id": study.id, "kind": study.kind, "pane": kind.pane, "lines": lines,
                    "markers": result["markers"]})
    return out


def _points(time: npt.NDArray[np.int64], values: F64) -> list[tuple[int, float | None]]:
    return [(t, v if np.isfinite(v) else None) for t, v in zip(time.tolist(), values.tolist(), strict=True)]


def merge_candles(library: Sequence[Candle], stored: Sequence[Candle], limit: int) -> list[Candle]:
    """The newest `limit` candles of both, oldest first; where both hold an open time the store's wins (it has the
    live process's latest figures, the forming bucket included)."""
    by_time = {c.open_time: c for c in library}
    by_time.update({c.open_time: c for c in stored})
    return [by_time[t] for t in sorted(by_time)][-limit:]
