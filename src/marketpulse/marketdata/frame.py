"""CandleFrame: candles as numpy columns, the shape indicators, strategies and the backtester work on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CandleFrame:
    time: I64  # candle open time, epoch ms UTC, strictly increasing
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    symbol: str = ""
    interval: str = ""

    def __post_init__(self) -> None:
        n = len(self.time)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CandleFrame column {name!r} has {len(getattr(self, name))} rows, time has {n}")

    def __len__(self) -> int:
        return len(self.time)

    def slice(self, start: int, stop: int) -> CandleFrame:
        return CandleFrame(
            self.time[start:stop], self.open[start:stop], self.high[start:stop], self.low[start:stop],
            self.close[start:stop], self.volume[start:stop], self.symbol, self.interval,
        )

    def take(self, rows: npt.NDArray[np.intp]) -> CandleFrame:
        """The rows at these indices (in the order given)."""
        return CandleFrame(
            self.time[rows], self.open[rows], self.high[rows], self.low[rows], self.close[rows], self.volume[rows],
            self.symbol, self.interval,
        )

    def between(self, start_ms: int | None, end_ms: int | None) -> CandleFrame:
        """Rows with start_ms <= time < end_ms (either bound optional)."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.time, start_ms, "left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.time, end_ms, "left"))
        return self.slice(lo, hi)
