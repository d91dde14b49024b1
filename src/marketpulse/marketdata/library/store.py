"""The Parquet candle library: one directory per (exchange, symbol, interval), history never rewritten.

Layout (Hive-style, so `pyarrow.dataset` and DuckDB can read it as one partitioned dataset):

    <root>/exchange=binance/symbol=BTCUSDT/interval=1m/part-000001-<first ms>-<last ms>.parquet

An append writes only candles whose open time the series doesn't hold yet, into a new part file (written to a
temporary name, then renamed, so readers never see half a file); earlier files are never opened for writing.
A candle already stored with different values is a *conflict*: kept as stored and counted in the report, because
history is not rewritten. Reads merge the parts, sort by time and drop repeated times (keeping the first written)
so two writers racing on one series can't produce duplicates. Gaps are reported, never filled.
One writer per series at a time is assumed (part numbers are taken from the directory listing).
"""

from __future__ import annotations

import builtins
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.library.series import Gap, check_series, find_gaps
from marketpulse.marketdata.models import normalize_symbol

COLUMNS = ("time", "open", "high", "low", "close", "volume")
SCHEMA = pa.schema([("time", pa.int64())] + [(c, pa.float64()) for c in COLUMNS[1:]])
# Measured on the 1,052,640 BTC minutes: 20 MB (vs 25 MB with pyarrow's defaults) and faster to write and read.
# Row groups of ~70 days of minutes let a range read skip groups by their min/max statistics; prices rarely repeat,
# so dictionary pages only cost; open times step evenly, which delta encoding stores in almost nothing.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "row_group_size": 100_000,
    "use_dictionary": False,
    "column_encoding": {"time": "DELTA_BINARY_PACKED"},
}
_PART = re.compile(r"part-(\d+)-(\d+)-(\d+)\.parquet")
_SAFE_NAME = re.compile(r"[^\W_][\w.]*")  # letters/digits (any script), then also '_' and '.': no path tricks


@dataclass(frozen=True)
class SeriesKey:
    exchange: str
    symbol: str
    interval: str

    @classmethod
    def of(cls, exchange: str, symbol: str, interval: str) -> SeriesKey:
        key = cls(exchange.strip().lower(), normalize_symbol(symbol), Interval.parse(interval).value)
        for what, value in (("exchange", key.exchange), ("symbol", key.symbol)):
            if not _SAFE_NAME.fullmatch(value):
                raise ValueError(f"{what} {value!r}: use letters and digits (e.g. binance, BTCUSDT)")
        return key

    @property
    def step_ms(self) -> int:
        return Interval.parse(self.interval).ms

    def path(self, root: Path) -> Path:
        return root / f"exchange={self.exchange}" / f"symbol={self.symbol}" / f"interval={self.interval}"


@dataclass(frozen=True)
class _Part:
    path: Path
    number: int
    first_ms: int
    last_ms: int


@dataclass(frozen=True)
class AppendReport:
    key: SeriesKey
    received: int  # candles in the frame given
    written: int  # candles new to the series, now stored
    duplicates: int  # already stored with the same values: skipped
    conflicts: int  # already stored with different values: kept as stored, skipped
    path: Path | None  # the new part file, None when nothing was new
    gaps: list[Gap] = field(default_factory=list)  # every gap in the series after the append


@dataclass(frozen=True)
class SeriesInfo:
    key: SeriesKey
    rows: int
    first_ms: int | None
    last_ms: int | None
    gaps: list[Gap]
    files: int
    bytes: int

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)


class CandleLibrary:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def append(self, exchange: str, symbol: str, interval: str, frame: CandleFrame) -> AppendReport:
        key = SeriesKey.of(exchange, symbol, interval)
        check_series(frame, key.step_ms)
        if not len(frame):
            return AppendReport(key, 0, 0, 0, 0, None, self.gaps(exchange, symbol, interval))
        stored = self._read(key, int(frame.time[0]), int(frame.time[-1]) + 1)
        is_new, duplicates, conflicts = _compare(frame, stored)
        path = self._write_part(key, frame, is_new) if is_new.any() else None
        return AppendReport(
            key, len(frame), int(is_new.sum()), duplicates, conflicts, path, self.gaps(exchange, symbol, interval)
        )

    def read(
        self, exchange: str, symbol: str, interval: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> CandleFrame:
        """Candles with start_ms <= open time < end_ms (bounds optional), sorted, one per open time."""
        return self._read(SeriesKey.of(exchange, symbol, interval), start_ms, end_ms)

    def gaps(self, exchange: str, symbol: str, interval: str) -> builtins.list[Gap]:
        key = SeriesKey.of(exchange, symbol, interval)
        return find_gaps(self._times(key), key.step_ms)

    def list(self) -> builtins.list[SeriesInfo]:  # `builtins.`: inside this class `list` is this method
        """Every series in the library, sorted by exchange, symbol, interval."""
        infos = []
        for directory in sorted(self.root.glob("exchange=*/symbol=*/interval=*")):
            key = SeriesKey.of(*(part.split("=", 1)[1] for part in directory.parts[-3:]))
            parts = self._parts(key)
            times = self._times(key)
            infos.append(
                SeriesInfo(
                    key,
                    len(times),
                    int(times[0]) if len(times) else None,
                    int(times[-1]) if len(times) else None,
                    find_gaps(times, key.step_ms),
                    len(parts),
                    sum(p.path.stat().st_size for p in parts),
                )  # fmt: skip
            )
        return infos

    # --- files ---------------------------------------------------------------------------------------------------

    def _parts(self, key: SeriesKey) -> builtins.list[_Part]:
        directory = key.path(self.root)
        if not directory.is_dir():
            return []
        parts = []
        for path in directory.iterdir():
            match = _PART.fullmatch(path.name)
            if match:
                parts.append(_Part(path, int(match[1]), int(match[2]), int(match[3])))
        return sorted(parts, key=lambda p: p.number)

    def _write_part(self, key: SeriesKey, frame: CandleFrame, rows: np.ndarray) -> Path:
        parts = self._parts(key)
        number = parts[-1].number + 1 if parts else 1
        time = frame.time[rows]
        table = pa.table({c: getattr(frame, c)[rows] for c in COLUMNS}, schema=SCHEMA)
        directory = key.path(self.root)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"part-{number:06d}-{int(time[0])}-{int(time[-1])}.parquet"
        temporary = directory / f".{path.name}.{uuid.uuid4().hex}.tmp"  # the glob for parts never matches it
        pq.write_table(table, temporary, **PARQUET_OPTIONS)
        os.replace(temporary, path)
        return path

    def _overlapping(self, key: SeriesKey, start_ms: int | None, end_ms: int | None) -> builtins.list[_Part]:
        # File names carry each part's first and last open time: skip parts outside the range without opening them.
        lo = start_ms if start_ms is not None else -(2**63)
        hi = end_ms if end_ms is not None else 2**63 - 1
        return [p for p in self._parts(key) if p.last_ms >= lo and p.first_ms < hi]

    def _times(self, key: SeriesKey) -> np.ndarray:
        parts = self._parts(key)
        if not parts:
            return np.zeros(0, dtype=np.int64)
        times = [pq.read_table(p.path, columns=["time"]).column("time").to_numpy() for p in parts]
        return _sorted_unique(np.concatenate(times))

    def _read(self, key: SeriesKey, start_ms: int | None, end_ms: int | None) -> CandleFrame:
        filters = []
        if start_ms is not None:
            filters.append(("time", ">=", start_ms))
        if end_ms is not None:
            filters.append(("time", "<", end_ms))
        tables = [pq.read_table(p.path, filters=filters or None) for p in self._overlapping(key, start_ms, end_ms)]
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        cols = {c: table.column(c).to_numpy() for c in COLUMNS}
        time = cols["time"]
        if len(time) > 1 and not (np.diff(time) > 0).all():  # parts interleave or overlap: merge them
            order = np.argsort(time, kind="stable")  # stable: among equal times, the first-written part first
            first = np.r_[True, time[order][1:] != time[order][:-1]]
            cols = {c: column[order[first]] for c, column in cols.items()}
        return CandleFrame(
            time=cols["time"].astype(np.int64, copy=False),
            open=cols["open"], high=cols["high"], low=cols["low"], close=cols["close"], volume=cols["volume"],
            symbol=key.symbol, interval=key.interval,
        )  # fmt: skip


def _compare(frame: CandleFrame, stored: CandleFrame) -> tuple[np.ndarray, int, int]:
    """(mask of frame rows not stored yet, rows stored with equal values, rows stored with different values)."""
    # Both time columns are sorted and unique, so a binary search matches rows (np.isin hashes: ~10x slower here).
    at = np.minimum(np.searchsorted(stored.time, frame.time), max(len(stored) - 1, 0))
    is_stored = stored.time[at] == frame.time if len(stored) else np.zeros(len(frame), dtype=bool)
    if not is_stored.any():
        return ~is_stored, 0, 0
    rows = np.flatnonzero(is_stored)
    at = at[rows]
    same = np.ones(len(rows), dtype=bool)
    for c in COLUMNS[1:]:
        same &= getattr(frame, c)[rows] == getattr(stored, c)[at]
    return ~is_stored, int(same.sum()), int((~same).sum())


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for int64 times that are mostly sorted already (np.unique hashes, which costs ~2 s per million)."""
    if len(values) < 2:
        return values
    steps = np.diff(values)
    if (steps > 0).all():
        return values
    values = np.sort(values, kind="stable")
    return values[np.r_[True, values[1:] != values[:-1]]]
