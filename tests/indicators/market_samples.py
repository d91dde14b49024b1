"""Real BTCUSDT minutes for indicator and strategy tests (the seeded walk is `support.walks.random_walk`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from marketpulse.marketdata.frame import CandleFrame

BTC_FILE = "binance_btcusdt_spot_1m.csv.gz"


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
