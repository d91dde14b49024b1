"""The market-data library: candles as Parquet under `settings.data_dir / "library"` (see `store` for the layout)."""

from marketpulse.marketdata.library.series import Gap, find_gaps
from marketpulse.marketdata.library.store import AppendReport, CandleLibrary, SeriesInfo, SeriesKey

__all__ = [
    "AppendReport",
    "CandleLibrary",
    "Gap",
    "SeriesInfo",
    "SeriesKey",
    "find_gaps",
]
