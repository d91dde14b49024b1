"""What a backtest can run on, for the /backtests page's data selector: the bundled samples and the candle
library's series (`GET /api/v1/backtests/sources`). A source names the symbols and intervals it can give and a
default that trades on it; the request itself still names symbol + interval (the loader's order: library, then the
sample), so choosing a source only fills the form.
"""

from __future__ import annotations

import csv
import gzip
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field

from marketpulse.marketdata import sample
from marketpulse.marketdata.intervals import Interval


class DataSource(BaseModel):
    id: str = Field(description="sample:<name> or library:<exchange>/<symbol>/<interval>")
    label: str
    kind: str = Field(description="sample | library")
    exchange: str
    symbols: list[str] = Field(description="symbols it holds (the first is the default)")
    intervals: list[str] = Field(description="intervals it can give: its own and coarser ones (resampled)")
    default_interval: str
    start: int | None = Field(description="first candle's open time, epoch ms")
    end: int | None = Field(description="last candle's open time, epoch ms")
    bars: int | None = Field(description="candles stored at its own interval")


def coarser(interval: Interval) -> list[str]:
    return [i.value for i in Interval if i.ms >= interval.ms]


@cache
def _perp_symbols(path: Path) -> tuple[str, ...]:
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return tuple(sorted({row[0] for row in reader if row}))


def sample_sources() -> list[DataSource]:
    perp = _perp_symbols(sample.usdm_perp_1h_path())
    majors = [s for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT") if s in perp]
    return [
        DataSource(id="sample:btcusdt_spot_1m", kind="sample", exchange="binance",
                   label="Bundled: BTCUSDT minutes, 2025-10-09 → 10-12 (3 days, the cascade)",
                   symbols=["BTCUSDT"], intervals=[i for i in coarser(Interval.M1) if Interval.parse(i).ms <
                                                   Interval.H1.ms],
                   default_interval="15m", start=1_759_968_000_000, end=1_760_227_140_000, bars=4320),
        DataSource(id="sample:usdm_perp_1h", kind="sample", exchange="binance",
                   label=f"Bundled: {len(perp)} USD-M perpetuals, hourly, 2025-10-07 → 10-14 (7 days)",
                   symbols=majors + [s for s in perp if s not in majors], intervals=coarser(Interval.H1),
                   default_interval="1h", start=1_759_795_200_000, end=1_760_396_400_000, bars=168),
    ]


def library_sources(library_root: Path) -> list[DataSource]:
    from marketpulse.marketdata.library import CandleLibrary

    if not library_root.is_dir():
        return []
    out = []
    for info in CandleLibrary(library_root).list():
        key = info.key
        interval = Interval.parse(key.interval)
        out.append(DataSource(
            id=f"library:{key.exchange}/{key.symbol}/{key.interval}", kind="library", exchange=key.exchange,
            label=f"Library: {key.exchange} {key.symbol} {key.interval} ({info.rows:,} candles)",
            symbols=[key.symbol], intervals=coarser(interval),
            default_interval=(interval if interval.ms >= Interval.H1.ms else Interval.H1).value,
            start=info.first_ms, end=info.last_ms, bars=info.rows))
    return out


def data_sources(library_root: Path) -> list[DataSource]:
    return sample_sources() + library_sources(library_root)
