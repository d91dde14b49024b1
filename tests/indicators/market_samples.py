"""Candle samples for indicator and strategy tests: a seeded random walk (always) and real BTCUSDT minutes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from marketpulse.marketdata.frame import CandleFrame

BTC_FILE = "binance_btcusdt_spot_1m.csv.gz"


def random_walk_candles(n: int, seed: int = 7, start: float = 30_000.0) -> CandleFrame:
    """Minute candles of a seeded random walk with realistic wicks, gaps between close and next open, volume."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, 0.0015, n)))
    open_ = np.empty(n)
    open_[0] = start
    open_[1:] = close[:-1] * (1 + rng.normal(0.0, 0.0003, n - 1))
    high = np.maximum(open_, close) * (1 + rng.exponential(0.0008, n))
    low = np.minimum(open_, close) * (1 - rng.exponential(0.0008, n))
    volume = rng.gamma(2.0, 5.0, n)
    time = 1_700_000_000_000 + 60_000 * np.arange(n, dtype=np.int64)
    return CandleFrame(time, open_, high, low, close, volume, "RANDOM", "1m")


def btc_candles(shared_data: Path, rows: int = 50_000) -> CandleFrame:
    """The first ``rows`` minutes of the real BTCUSDT file, streamed so the whole 1M-row file is not parsed."""
    reader = pacsv.open_csv(shared_data / BTC_FILE)
    batches = []
    count = 0
    for batch in reader:
        batches.append(batch)
        count += batch.num_rows
        if count >= rows:
            break
    table = pa.Table.from_batches(batches).slice(0, rows)

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy()

    return CandleFrame(
        col("open_time_ms").astype(np.int64), col("open").astype(np.float64), col("high").astype(np.float64),
        col("low").astype(np.float64), col("close").astype(np.float64), col("volume").astype(np.float64),
        "BTCUSDT", "1m",
    )
