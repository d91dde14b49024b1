"""Pure candle-series logic: intervals, validation, gap detection and exact resampling (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketpulse.marketdata.frame import I64, CandleFrame

MINUTE_MS = 60_000
# Binance's intervals that divide a UTC day evenly, so every bucket boundary is the same on every day.
INTERVALS_MS: dict[str, int] = {
    "1m": MINUTE_MS, "3m": 3 * MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS, "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS, "2h": 120 * MINUTE_MS, "4h": 240 * MINUTE_MS, "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS, "12h": 720 * MINUTE_MS, "1d": 1440 * MINUTE_MS,
}  # fmt: skip


class UnknownIntervalError(ValueError):
    def __init__(self, interval: str) -> None:
        super().__init__(f"unknown interval {interval!r} (use one of {', '.join(INTERVALS_MS)})")


def interval_ms(interval: str) -> int:
    try:
        return INTERVALS_MS[interval]
    except KeyError:
        raise UnknownIntervalError(interval) from None


@dataclass(frozen=True)
class Gap:
    """Candles missing between two present ones: open times start_ms, start_ms + step, … < end_ms."""

    start_ms: int  # open time of the first missing candle
    end_ms: int  # open time of the next candle present
    missing: int  # how many candles are missing


def find_gaps(time: I64, step_ms: int) -> list[Gap]:
    """Every hole in a strictly increasing, step-aligned series of open times."""
    if len(time) < 2:
        return []
    jumps = np.flatnonzero(np.diff(time) > step_ms)
    return [
        Gap(int(time[i]) + step_ms, int(time[i + 1]), (int(time[i + 1]) - int(time[i])) // step_ms - 1)
        for i in jumps.tolist()
    ]


def check_series(frame: CandleFrame, step_ms: int) -> None:
    """Raise ValueError naming the first row that breaks the library's rules (sorted, unique, aligned, finite)."""
    time = frame.time
    if len(time) > 1:
        bad = np.flatnonzero(np.diff(time) <= 0)
        if len(bad):
            i = int(bad[0]) + 1
            raise ValueError(f"row {i}: open time {int(time[i])} is not after the previous row's {int(time[i - 1])}")
    misaligned = np.flatnonzero(time % step_ms)
    if len(misaligned):
        i = int(misaligned[0])
        raise ValueError(f"row {i}: open time {int(time[i])} is not on a {frame.interval or step_ms} boundary (UTC)")
    for name in ("open", "high", "low", "close", "volume"):
        broken = np.flatnonzero(~np.isfinite(getattr(frame, name)))
        if len(broken):
            raise ValueError(f"row {int(broken[0])}: {name} is not a finite number")


def resample(frame: CandleFrame, to_interval: str, *, keep_partial: bool = False) -> CandleFrame:
    """Aggregate `frame` (whose `interval` must be set) into `to_interval` candles aligned to UTC boundaries.

    Exact OHLCV: open of the first candle, max high, min low, close of the last candle, sum of volume.
    A bucket is complete when it holds every source candle (e.g. 60 one-minute candles for 1h). Incomplete buckets —
    the trailing one still forming, a leading one when data starts mid-bucket, any that a gap runs through — are
    dropped by default, so every candle returned is exact; `keep_partial=True` keeps them, aggregated from the
    candles present. Dropping never fills anything: a gap in the source becomes a gap in the result.
    """
    source_ms = interval_ms(frame.interval) if frame.interval else 0
    if not source_ms:
        raise ValueError("resample: the frame's interval is not set (CandleFrame.interval, e.g. '1m')")
    target_ms = interval_ms(to_interval)
    if target_ms <= source_ms or target_ms % source_ms:
        raise ValueError(f"resample: {to_interval} is not a whole multiple of {frame.interval} above it")
    if not len(frame):
        return CandleFrame(*_empty_columns(), symbol=frame.symbol, interval=to_interval)
    bucket = frame.time - frame.time % target_ms
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(frame)]
    keep = slice(None) if keep_partial else (ends - starts) == target_ms // source_ms
    return CandleFrame(
        time=bucket[starts][keep],
        open=frame.open[starts][keep],
        high=np.maximum.reduceat(frame.high, starts)[keep],
        low=np.minimum.reduceat(frame.low, starts)[keep],
        close=frame.close[ends - 1][keep],
        volume=np.add.reduceat(frame.volume, starts)[keep],
        symbol=frame.symbol,
        interval=to_interval,
    )


def _empty_columns() -> tuple[I64, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    empty = np.zeros(0, dtype=np.float64)
    return np.zeros(0, dtype=np.int64), empty, empty.copy(), empty.copy(), empty.copy(), empty.copy()
