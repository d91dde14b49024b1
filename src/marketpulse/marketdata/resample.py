"""Resampling candles into a coarser interval: the one bucketing step behind the library (`pulse data resample`,
backtests), the SQL store's history (`GET /api/v1/market/history`) and the replay's hours (pure numpy, no I/O).
"""

from __future__ import annotations

import numpy as np

from marketpulse.marketdata.frame import I64, CandleFrame
from marketpulse.marketdata.intervals import Interval


class Buckets:
    """Consecutive candles grouped into UTC-aligned buckets of a coarser interval: the one resampling step that
    the library, the SQL store's history and the replay's hours all use (so they agree to the candle).

    `starts`/`ends` index each bucket's first and one-past-last source candle; `complete` says whether it holds
    every source candle the bucket spans (60 minutes for 1h). Reductions take any column of the source rows.
    """

    def __init__(self, time: I64, source: Interval, target: Interval) -> None:
        self.count = target.holds(source)  # source candles in a complete bucket
        self.target = target
        bucket = time - time % target.ms
        if len(time):
            self.starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
            self.ends = np.r_[self.starts[1:], len(time)].astype(np.intp)
        else:
            self.starts = self.ends = np.zeros(0, dtype=np.intp)
        self.time: I64 = bucket[self.starts]
        self.complete = (self.ends - self.starts) == self.count

    def first(self, values: np.ndarray) -> np.ndarray:
        return values[self.starts]

    def last(self, values: np.ndarray) -> np.ndarray:
        return values[self.ends - 1]

    def max(self, values: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(values, self.starts) if len(self.starts) else values[:0]

    def min(self, values: np.ndarray) -> np.ndarray:
        return np.minimum.reduceat(values, self.starts) if len(self.starts) else values[:0]

    def sum(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.starts) if len(self.starts) else values[:0]

    def frame(self, frame: CandleFrame) -> CandleFrame:
        """Every bucket (complete or not) as an exact OHLCV candle: first open, max high, min low, last close,
        summed volume."""
        return CandleFrame(
            self.time, self.first(frame.open), self.max(frame.high), self.min(frame.low), self.last(frame.close),
            self.sum(frame.volume), symbol=frame.symbol, interval=self.target.value,
        )


def resample(frame: CandleFrame, to_interval: str, *, keep_partial: bool = False) -> CandleFrame:
    """Aggregate `frame` (whose `interval` must be set) into `to_interval` candles aligned to UTC boundaries.

    Exact OHLCV (see `Buckets`). A bucket is complete when it holds every source candle (e.g. 60 one-minute
    candles for 1h). Incomplete buckets — the trailing one still forming, a leading one when data starts
    mid-bucket, any that a gap runs through — are dropped by default, so every candle returned is exact;
    `keep_partial=True` keeps them, aggregated from the candles present. Dropping never fills anything: a gap in
    the source becomes a gap in the result.
    """
    if not frame.interval:
        raise ValueError("resample: the frame's interval is not set (CandleFrame.interval, e.g. '1m')")
    source, target = Interval.parse(frame.interval), Interval.parse(to_interval)
    if target.ms <= source.ms:
        raise ValueError(f"resample: {target} is not a whole multiple of {source} above it")
    try:
        buckets = Buckets(frame.time, source, target)
    except ValueError as exc:
        raise ValueError(f"resample: {exc} above it") from None
    out = buckets.frame(frame)
    return out if keep_partial else out.take(np.flatnonzero(buckets.complete))
