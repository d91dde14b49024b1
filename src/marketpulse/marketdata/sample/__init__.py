"""The repository's compact real-data sample (derived from ../shared/data by scripts/make_sample.py).

A clone works without ../shared: the replay plays these files by default, and tests and the backtest demo
can read them. Same CSV layout as ../shared/data (gzip, header line, ms open times, plain decimals).
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent

# Every USD-M perpetual (≈510 listed then), hourly, 2025-10-07 00:00 → 2025-10-14 00:00 UTC (exclusive).
# Columns: symbol, open_time_ms, open, high, low, close, volume (no quote volume: use volume × close).
USDM_PERP_1H = SAMPLE_DIR / "usdm_perp_1h_2025-10-07_2025-10-14.csv.gz"
# Binance spot BTCUSDT minutes, 2025-10-09 00:00 → 2025-10-12 00:00 UTC (exclusive).
# Columns: open_time_ms, open, high, low, close, volume, quote_volume, trades.
BTCUSDT_SPOT_1M = SAMPLE_DIR / "btcusdt_spot_1m_2025-10-09_2025-10-12.csv.gz"

# The hour the 2025-10-10 liquidation cascade hit (open time, ms): most symbols trade >5× their usual volume.
CASCADE_HOUR_MS = 1_760_130_000_000  # 2025-10-10 21:00 UTC


def usdm_perp_1h_path() -> Path:
    """The bundled hourly USD-M sample (the replay's default file)."""
    return USDM_PERP_1H


def btcusdt_spot_1m_path() -> Path:
    """The bundled BTCUSDT spot 1-minute sample."""
    return BTCUSDT_SPOT_1M
