"""resample: exact OHLCV aggregation into UTC-aligned buckets; incomplete buckets dropped unless kept."""

from __future__ import annotations

import numpy as np
import pytest

from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.library import find_gaps
from marketpulse.marketdata.resample import resample

DAY = 1_704_067_200_000  # 2024-01-01 00:00 UTC
M = 60_000


def frame_of(rows: list[tuple[int, float, float, float, float, float]], interval: str = "1m") -> CandleFrame:
    t, o, h, lo, c, v = (np.asarray(col) for col in zip(*rows, strict=True))
    return CandleFrame(t.astype(np.int64), o * 1.0, h * 1.0, lo * 1.0, c * 1.0, v * 1.0, "BTCUSDT", interval)


# Twelve minutes 00:00–00:11 written out by hand: (minute, open, high, low, close, volume).
MINUTES = [
    (0, 10, 12, 9, 11, 1), (1, 11, 15, 10, 14, 2), (2, 14, 14, 8, 9, 3), (3, 9, 10, 7, 10, 4), (4, 10, 11, 10, 10.5, 5),
    (5, 10.5, 13, 10, 12, 6), (6, 12, 12, 11, 11, 7), (7, 11, 20, 11, 19, 8), (8, 19, 19, 3, 4, 9),
    (9, 4, 6, 4, 5, 10), (10, 5, 7, 5, 6, 11), (11, 6, 6, 1, 2, 12),
]  # fmt: skip


def one_minute(rows: list[tuple[float, ...]], start: int = DAY) -> CandleFrame:
    return frame_of([(start + int(m) * M, o, h, lo, c, v) for m, o, h, lo, c, v in rows])


def test_five_minute_buckets_are_exact_and_the_forming_one_is_dropped() -> None:
    out = resample(one_minute(MINUTES), "5m")
    # 00:00–00:04: open 10, high max(12,15,14,10,11)=15, low min(9,10,8,7,10)=7, close 10.5, volume 1+…+5=15
    # 00:05–00:09: open 10.5, high 20, low 3, close 5, volume 6+…+10=40;  00:10–00:11 holds 2 of 5: dropped
    assert out.time.tolist() == [DAY, DAY + 5 * M]
    assert out.open.tolist() == [10, 10.5]
    assert out.high.tolist() == [15, 20]
    assert out.low.tolist() == [7, 3]
    assert out.close.tolist() == [10.5, 5]
    assert out.volume.tolist() == [15, 40]
    assert (out.symbol, out.interval) == ("BTCUSDT", "5m")


def test_keep_partial_aggregates_what_is_there() -> None:
    out = resample(one_minute(MINUTES), "5m", keep_partial=True)
    assert out.time.tolist() == [DAY, DAY + 5 * M, DAY + 10 * M]
    assert (out.open[2], out.high[2], out.low[2], out.close[2], out.volume[2]) == (5, 7, 1, 2, 23)


def test_buckets_align_to_utc_boundaries_not_to_the_first_candle() -> None:
    out = resample(one_minute(MINUTES[3:]), "5m")  # starts 00:03: the 00:00 bucket is incomplete
    assert out.time.tolist() == [DAY + 5 * M]
    shifted = resample(one_minute(MINUTES, start=DAY + 2 * M), "5m", keep_partial=True)
    assert shifted.time.tolist() == [DAY, DAY + 5 * M, DAY + 10 * M]


def test_a_bucket_a_gap_runs_through_is_dropped_and_the_gap_carries_over() -> None:
    holed = one_minute([r for r in MINUTES if r[0] != 7])
    out = resample(holed, "5m")
    assert out.time.tolist() == [DAY]
    assert find_gaps(out.time, 5 * M) == []  # one candle: nothing between
    assert resample(holed, "5m", keep_partial=True).high.tolist() == [15, 19, 7]


@pytest.mark.parametrize(("to", "per_bucket"), [("15m", 15), ("1h", 60), ("4h", 240), ("1d", 1440)])
def test_larger_intervals_match_a_direct_aggregation(to: str, per_bucket: int) -> None:
    rng = np.random.default_rng(7)
    n = 3 * 1440 + 17  # three days and a forming bucket
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) + rng.random(n)
    low = np.minimum(open_, close) - rng.random(n)
    frame = CandleFrame(DAY + np.arange(n, dtype=np.int64) * M, open_, high, low, close, rng.random(n) * 5, "X", "1m")
    out = resample(frame, to)
    complete = n // per_bucket
    assert len(out) == complete
    for b in (0, complete // 2, complete - 1):
        s = slice(b * per_bucket, (b + 1) * per_bucket)
        assert out.time[b] == DAY + b * per_bucket * M
        assert (out.open[b], out.close[b]) == (open_[s][0], close[s][-1])
        assert (out.high[b], out.low[b]) == (high[s].max(), low[s].min())
        assert out.volume[b] == pytest.approx(frame.volume[s].sum(), rel=1e-12)


def test_hourly_to_daily_starts_at_midnight_utc() -> None:
    hours = frame_of([(DAY + 23 * 3_600_000 + h * 3_600_000, 1, 2, 0.5, 1.5, 1) for h in range(25)], "1h")
    out = resample(hours, "1d")
    assert out.time.tolist() == [DAY + 86_400_000]  # 23:00 alone is incomplete; the next 24 hours make a day
    assert out.volume.tolist() == [24]


@pytest.mark.parametrize(
    ("interval", "to", "problem"),
    [("5m", "1m", "not a whole multiple"), ("5m", "5m", "not a whole multiple"), ("3m", "5m", "not a whole multiple"),
     ("1m", "7m", "unknown interval '7m'"), ("", "5m", "interval is not set")],
)  # fmt: skip
def test_impossible_resamples_are_refused(interval: str, to: str, problem: str) -> None:
    frame = CandleFrame(np.asarray([DAY]), *[np.ones(1)] * 5, "X", interval)
    with pytest.raises(ValueError, match=problem):
        resample(frame, to)


def test_empty_frame_resamples_to_empty() -> None:
    empty = CandleFrame(np.zeros(0, np.int64), *[np.zeros(0)] * 5, "X", "1m")
    out = resample(empty, "1h")
    assert len(out) == 0 and out.interval == "1h"
