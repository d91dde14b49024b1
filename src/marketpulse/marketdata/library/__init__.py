"""The market-data library: candles as Parquet under `settings.data_dir / "library"` (see `store` for the layout)."""

from marketpulse.marketdata.library.series import (
    Buckets,
    Gap,
    find_gaps,
    resample,
)
from marketpulse.marketdata.library.store import AppendReport, CandleLibrary, SeriesInfo, SeriesKey

__all__ = [
    "AppendReport",
    "CandleLibrary",
    "Buckets",
    "Gap",
    "SeriesInfo",
    "SeriesKey",
    "find_gaps",
    "resample",
]
