"""Pure candle-series logic: validation and gap detection (no I/O); resampling is `marketdata.resample`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketpulse.marketdata.frame import I64, CandleFrame


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
