"""The market-data library: candles as Parquet under `settings.data_dir / "library"` (see `store` for the layout)."""

from marketpulse.marketdata.library.series import (
    INTERVALS_MS,
    Gap,
    UnknownIntervalError,
    find_gaps,
    interval_ms,
    resample,
)
from marketpulse.marketdata.library.store import AppendReport, CandleLibrary, SeriesInfo, SeriesKey

__all__ = [
    "INTERVALS_MS",
    "AppendReport",
    "CandleLibrary",
    "Gap",
    "SeriesInfo",
    "SeriesKey",
    "UnknownIntervalError",
    "find_gaps",
    "interval_ms",
    "resample",
]
