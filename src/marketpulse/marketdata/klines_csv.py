"""Read klines CSV files (the layouts of ../shared/data and the seed's) into Candles or CandleFrames.

Accepted layouts (one header line; gzip or plain text, told apart by the gzip magic bytes, not the file name):
- `open_time_ms,open,high,low,close,volume[,quote_volume][,trades]` with an optional `symbol` column anywhere;
- the seed's `timestamp,open,high,low,close,volume,symbol` (`timestamp` as epoch ms or an ISO 8601 string).
Extra columns are ignored. Times are candle OPEN times, epoch ms UTC.

`quote_volume` (USDT) is taken from the file when present, else approximated as `volume × close` (the futures files
of ../shared/data carry no quote volume; their README calls volume × close an approximation).
Without a `symbol` column the symbol is the `symbol=` argument, else a `…USDT` token in the file name
(`binance_btcusdt_spot_1m.csv.gz` → BTCUSDT), else "UNKNOWN".

Two readers share one validation:
- the fast path parses with pyarrow.csv (the 1M-row BTC minute file loads in about a second);
- when pyarrow rejects the file, or its result breaks a rule (nulls, non-finite numbers, negative volume, duplicate
  (symbol, time)), a line-by-line parser re-reads it to raise `KlinesFormatError` naming the file and the line.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from marketpulse.marketdata.frame import F64, I64, CandleFrame
from marketpulse.marketdata.intervals import interval_of_ms
from marketpulse.marketdata.models import Candle, normalize_symbol
from marketpulse.times import EARLIEST_MS, LATEST_MS, parse_time_ms

TIME_COLUMNS = ("open_time_ms", "timestamp", "open_time")
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_GZIP_MAGIC = b"\x1f\x8b"
_SYMBOL_IN_NAME = re.compile(r"([a-z0-9]+usdt)", re.IGNORECASE)


class KlinesFormatError(ValueError):
    """A klines file that can't be read; `line` is 1-based (the header is line 1), 0 when the file can't be opened."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class KlineColumns:
    """All rows of a klines file as columns, sorted by (symbol, time). Row i is symbol `names[codes[i]]`."""

    names: list[str]
    codes: I64
    time: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    quote_volume: F64
    interval: str

    def __len__(self) -> int:
        return len(self.time)

    def symbol_runs(self) -> Iterator[tuple[str, int, int]]:
        """(symbol, start, stop) for each symbol's block of rows."""
        bounds = [0, *(np.flatnonzero(np.diff(self.codes)) + 1).tolist(), len(self.codes)]
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            if stop > start:
                yield self.names[int(self.codes[start])], start, stop


def read_klines(path: str | Path, *, symbol: str | None = None, interval: str | None = None) -> list[Candle]:
    """Every candle in the file (only `symbol`'s when given), sorted by (symbol, open time), all closed."""
    cols = read_kline_columns(path, symbol=symbol, interval=interval)
    names = cols.names
    rows = zip(
        [names[c] for c in cols.codes.tolist()], cols.time.tolist(), cols.open.tolist(), cols.high.tolist(),
        cols.low.tolist(), cols.close.tolist(), cols.volume.tolist(), cols.quote_volume.tolist(), strict=True,
    )
    iv = cols.interval
    return [Candle(s, iv, t, o, h, lo, c, v, qv) for s, t, o, h, lo, c, v, qv in rows]


def read_klines_frame(
    path: str | Path, symbol: str | None = None, *, interval: str | None = None
) -> dict[str, CandleFrame]:
    """The file as one CandleFrame per symbol (columnar, for backtests and the data library)."""
    cols = read_kline_columns(path, symbol=symbol, interval=interval)
    frames: dict[str, CandleFrame] = {}
    for name, start, stop in cols.symbol_runs():
        frames[name] = CandleFrame(
            cols.time[start:stop], cols.open[start:stop], cols.high[start:stop], cols.low[start:stop],
            cols.close[start:stop], cols.volume[start:stop], name, cols.interval,
        )
    return frames


def read_kline_columns(path: str | Path, *, symbol: str | None = None, interval: str | None = None) -> KlineColumns:
    """The file as sorted, validated columns (the shared core of both readers, also used by `pulse detect`)."""
    path = Path(path)
    raw = _read_bytes(path)
    wanted = normalize_symbol(symbol) if symbol else None
    default_symbol = wanted or _symbol_from_file_name(path)
    try:
        cols = _fast_columns(raw, path, default_symbol, wanted)
    except (_NeedsLineCheck, pa.ArrowInvalid):
        cols = _checked_columns(raw, path, default_symbol, wanted)
    return _finish(cols, interval)


# --- opening ---------------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KlinesFormatError(path, 0, "no such file") from None
    except OSError as exc:
        raise KlinesFormatError(path, 0, f"can't read: {exc.strerror or exc}") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise KlinesFormatError(path, 0, f"corrupt gzip data: {exc}") from None
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM (spreadsheet exports) is not part of the header
    if not data.strip():
        raise KlinesFormatError(path, 1, "empty file: expected a header line")
    return data


def _symbol_from_file_name(path: Path) -> str:
    match = _SYMBOL_IN_NAME.search(path.name)
    return match.group(1).upper() if match else "UNKNOWN"


@dataclass(frozen=True)
class _Header:
    time: str
    symbol: str | None
    quote_volume: bool


def _parse_header(names: list[str], path: Path) -> _Header:
    present = set(names)
    time_col = next((c for c in TIME_COLUMNS if c in present), None)
    missing = [c for c in PRICE_COLUMNS if c not in present]
    if time_col is None:
        missing.insert(0, "open_time_ms (or timestamp)")
    if missing:
        raise KlinesFormatError(path, 1, f"missing column(s) {', '.join(missing)}; header is {','.join(names)!r}")
    assert time_col is not None
    return _Header(time_col, "symbol" if "symbol" in present else None, "quote_volume" in present)


# --- fast path (pyarrow) ------------------------------------------------------------------------------------------


class _NeedsLineCheck(Exception):
    """The fast path found something wrong; the line parser finds where and says what."""


def _fast_columns(raw: bytes, path: Path, default_symbol: str, wanted: str | None) -> _RawColumns:
    first_line = raw.split(b"\n", 1)[0].decode("utf-8", "replace")
    header = _parse_header([c.strip() for c in next(csv.reader([first_line]), [])], path)
    types: dict[str, pa.DataType] = {c: pa.float64() for c in PRICE_COLUMNS}
    if header.quote_volume:
        types["quote_volume"] = pa.float64()
    if header.symbol:
        types["symbol"] = pa.string()
    include = [header.time, *types]
    table = pacsv.read_csv(
        pa.BufferReader(raw),
        convert_options=pacsv.ConvertOptions(column_types=types, include_columns=include, strings_can_be_null=False),
    )
    if any(table.column(c).null_count for c in include):
        raise _NeedsLineCheck
    time = _time_column_ms(table.column(header.time))
    if header.symbol:
        encoded = pc.dictionary_encode(table.column("symbol")).combine_chunks()
        raw_names = encoded.dictionary.to_pylist()
        raw_codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        raw_names, raw_codes = [default_symbol], np.zeros(table.num_rows, dtype=np.int64)
    f = {c: _numpy(table.column(c)).astype(np.float64, copy=False) for c in types if c != "symbol"}
    cols = _RawColumns.from_symbols(
        raw_names, raw_codes, time, f["open"], f["high"], f["low"], f["close"], f["volume"], f.get("quote_volume")
    )
    if not cols.all_valid():
        raise _NeedsLineCheck
    return cols.only(wanted)


def _time_column_ms(column: pa.ChunkedArray) -> I64:
    if pa.types.is_integer(column.type):
        return _numpy(column).astype(np.int64, copy=False)
    if pa.types.is_timestamp(column.type):
        # pyarrow parsed ISO 8601 text; naive means UTC here, like everywhere in these files.
        return _numpy(pc.cast(column, pa.timestamp("ms", tz=column.type.tz)).cast(pa.int64())).astype(np.int64)
    raise _NeedsLineCheck  # text pyarrow didn't recognise, or floats: let the line parser decide


def _numpy(column: pa.ChunkedArray) -> npt.NDArray[np.generic]:
    # ChunkedArray.to_numpy() goes through pandas (a 0.4 s import); one combined Array converts directly.
    return column.combine_chunks().to_numpy(zero_copy_only=False)


# --- line parser (exact errors) ---------------------------------------------------------------------------------


def _checked_columns(raw: bytes, path: Path, default_symbol: str, wanted: str | None) -> _RawColumns:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise KlinesFormatError(path, line, "not UTF-8 text") from None
    rows = csv.reader(io.StringIO(text))
    names = [c.strip() for c in next(rows)]
    header = _parse_header(names, path)
    index = {name: i for i, name in enumerate(names)}
    out = _RowCollector(default_symbol)
    for line_no, fields in _numbered(rows):
        if len(fields) != len(names):
            raise KlinesFormatError(path, line_no, f"{len(fields)} fields, the header has {len(names)}")
        try:
            out.add(fields, index, header)
        except ValueError as exc:
            raise KlinesFormatError(path, line_no, str(exc)) from None
    cols = out.columns()
    duplicate = cols.first_duplicate()
    if duplicate is not None:
        raise KlinesFormatError(path, duplicate + 2, "duplicate candle (same symbol and open time as an earlier row)")
    return cols.only(wanted)


def _numbered(rows: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    # csv.reader.line_num counts physical lines, so quoted newlines still report the right line.
    for fields in rows:
        if fields:
            yield rows.line_num, fields  # type: ignore[attr-defined]


class _RowCollector:
    def __init__(self, default_symbol: str) -> None:
        self.default_symbol = default_symbol
        self.symbol_codes: dict[str, int] = {}
        self.codes: list[int] = []
        self.time: list[int] = []
        self.values: dict[str, list[float]] = {c: [] for c in (*PRICE_COLUMNS, "quote_volume")}

    def add(self, fields: list[str], index: dict[str, int], header: _Header) -> None:
        time = _parse_time(fields[index[header.time]].strip(), header.time)
        numbers = {c: _parse_number(fields[index[c]], c) for c in PRICE_COLUMNS}
        if header.quote_volume:
            numbers["quote_volume"] = _parse_number(fields[index["quote_volume"]], "quote_volume")
        for c in ("volume", "quote_volume"):
            if numbers.get(c, 0.0) < 0:
                raise ValueError(f"column {c}: negative value {numbers[c]!r}")
        symbol = fields[index[header.symbol]].strip() if header.symbol else self.default_symbol
        if not symbol:
            raise ValueError("column symbol: empty")
        self.codes.append(self.symbol_codes.setdefault(symbol, len(self.symbol_codes)))
        self.time.append(time)
        for c, v in numbers.items():
            self.values[c].append(v)

    def columns(self) -> _RawColumns:
        v = {c: np.asarray(x, dtype=np.float64) for c, x in self.values.items()}
        qv = v["quote_volume"] if len(v["quote_volume"]) == len(self.time) and self.time else None
        return _RawColumns.from_symbols(
            list(self.symbol_codes), np.asarray(self.codes, dtype=np.int64), np.asarray(self.time, dtype=np.int64),
            v["open"], v["high"], v["low"], v["close"], v["volume"], qv,
        )


def _parse_number(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"column {column}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"column {column}: {text.strip()!r} is not a finite number")
    return value


def _parse_time(text: str, column: str) -> int:
    try:
        return parse_time_ms(text)
    except ValueError as exc:
        raise ValueError(f"column {column}: {exc}") from None


# --- shared validation and finishing ------------------------------------------------------------------------------


@dataclass
class _RawColumns:
    """Parsed rows; symbols as integer codes into `names` (sorted), so sorting and comparing stay in numpy."""

    names: list[str]
    codes: I64
    time: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    quote_volume: F64 | None

    @classmethod
    def from_symbols(cls, raw_names: list[str], raw_codes: I64, *numbers: F64 | I64 | None) -> _RawColumns:
        """Normalize the distinct symbols once (two spellings may merge) and re-code rows to the sorted names."""
        normalized = [normalize_symbol(n.strip()) for n in raw_names]
        names = sorted(set(normalized))
        position = {n: i for i, n in enumerate(names)}
        remap = np.asarray([position[n] for n in normalized], dtype=np.int64)
        codes = remap[raw_codes] if len(raw_codes) else np.zeros(0, dtype=np.int64)
        time, o, h, lo, c, v, qv = numbers
        assert time is not None and o is not None and h is not None and lo is not None
        assert c is not None and v is not None
        return cls(names, codes, time.astype(np.int64), o, h, lo, c, v, qv)  # type: ignore[arg-type]

    def all_valid(self) -> bool:
        numbers = [self.open, self.high, self.low, self.close, self.volume]
        if self.quote_volume is not None:
            numbers.append(self.quote_volume)
        if not all(np.isfinite(a).all() for a in numbers):
            return False
        if len(self.time) and not (self.time.min() >= EARLIEST_MS and self.time.max() < LATEST_MS):
            return False  # the line parser names the first row outside the range
        if (self.volume < 0).any() or (self.quote_volume is not None and (self.quote_volume < 0).any()):
            return False
        return self.first_duplicate() is None

    def first_duplicate(self) -> int | None:
        """Row index (0-based, data rows, file order) of the first repeat of an earlier (symbol, time), or None."""
        order = self.order()
        c, t = self.codes[order], self.time[order]
        if not ((c[1:] == c[:-1]) & (t[1:] == t[:-1])).any():
            return None
        seen: set[tuple[int, int]] = set()
        for i, key in enumerate(zip(self.codes.tolist(), self.time.tolist(), strict=True)):
            if key in seen:
                return i
            seen.add(key)
        return None  # pragma: no cover - the sorted check said there is one

    def is_sorted(self) -> bool:
        dc, dt = np.diff(self.codes), np.diff(self.time)
        return bool(((dc > 0) | ((dc == 0) & (dt > 0))).all())

    def order(self) -> npt.NDArray[np.intp]:
        if self.is_sorted():
            return np.arange(len(self.time))
        return np.lexsort((self.time, self.codes))

    def only(self, wanted: str | None) -> _RawColumns:
        if wanted is None:
            return self
        if wanted not in self.names:
            return self.take(np.zeros(0, dtype=np.intp))
        return self.take(np.flatnonzero(self.codes == self.names.index(wanted)))

    def take(self, idx: npt.NDArray[np.intp]) -> _RawColumns:
        qv = None if self.quote_volume is None else self.quote_volume[idx]
        return _RawColumns(
            self.names, self.codes[idx], self.time[idx], self.open[idx], self.high[idx], self.low[idx],
            self.close[idx], self.volume[idx], qv,
        )


def _finish(cols: _RawColumns, interval: str | None) -> KlineColumns:
    if not cols.is_sorted():
        cols = cols.take(cols.order())
    quote = cols.quote_volume if cols.quote_volume is not None else cols.volume * cols.close
    return KlineColumns(
        cols.names, cols.codes, cols.time, cols.open, cols.high, cols.low, cols.close, cols.volume, quote,
        interval or infer_interval(cols.codes, cols.time),
    )


def infer_interval(codes: I64, time: I64) -> str:
    """The smallest spacing between consecutive candles of one symbol (rows sorted by symbol code, time), as '1m',
    '5m', '1h', '1d'…; '1m' when no symbol has two candles (pass `interval=` for such files)."""
    if len(time) < 2:
        return "1m"
    steps = np.diff(time)[np.diff(codes) == 0]
    steps = steps[steps > 0]
    if not len(steps):
        return "1m"
    step = int(steps.min())
    known = interval_of_ms(step)
    return known.value if known is not None else interval_name(step)  # readers refuse an unknown one by name


def interval_name(step_ms: int) -> str:
    """A spacing no `Interval` has, named for messages ('7m', '90s')."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if step_ms % size == 0:
            return f"{step_ms // size}{unit}"
    return f"{step_ms}ms"
