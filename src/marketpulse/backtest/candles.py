"""The candles a backtest runs on: the one loader behind `pulse backtest run|sweep` and POST /api/v1/backtests.

From a CSV file (`CandleQuery.file`), else the Parquet library (the interval itself, else its 1m candles
resampled), else the repository's bundled sample; then cut to [start, end) and resampled to the interval asked
for. Both callers get the same candles, the same fallbacks and the same refusals (`NoCandles`, with the reason);
they differ only in how a file is named: the API checks its `data` name stays under `data_dir`
(`safe_data_path`), the CLI reads the path it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from marketpulse.backtest.schemas import BacktestRequest, FieldError
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import Interval


class NoCandles(LookupError):
    pass


@dataclass(frozen=True)
class CandleQuery:
    symbol: str | None  # required for the library; picks one symbol out of a multi-symbol file
    interval: Interval | None  # None: a file's candles as they are (the library needs one)
    exchange: str = "binance"
    start: int | None = None  # epoch ms, inclusive
    end: int | None = None  # epoch ms, exclusive
    file: Path | None = None  # a candle CSV instead of the library
    file_label: str = ""  # how messages and the result name the file (default: its path)


@dataclass(frozen=True)
class LoadedCandles:
    frame: CandleFrame
    source: str  # where they came from, reported with the result


def load_candles(q: CandleQuery, library_root: Path) -> LoadedCandles:
    """The query's candles at its interval, in [start, end); NoCandles explains what is missing. A malformed file
    raises KlinesFormatError (naming the file and line)."""
    loaded = _from_file(q) if q.file is not None else _from_library_or_sample(q, library_root)
    frame = _at_interval(loaded.frame.between(q.start, q.end), q.interval)
    if len(frame) < 2:
        raise NoCandles(f"{loaded.source}: fewer than 2 {frame.interval} candles in the requested range")
    return LoadedCandles(frame, loaded.source)


def job_candles(req: BacktestRequest, data_dir: Path) -> LoadedCandles:
    """A backtest job's candles: its `data` name must stay under `data_dir`; the library is `data_dir/library`."""
    file = None if req.data is None else safe_data_path(data_dir, req.data)
    query = CandleQuery(req.symbol, req.interval, req.exchange, req.start, req.end, file, req.data or "")
    return load_candles(query, data_dir / "library")


def _at_interval(frame: CandleFrame, interval: Interval | None) -> CandleFrame:
    from marketpulse.marketdata.resample import resample

    if interval is None or frame.interval == interval:
        return frame
    if interval.ms < Interval.parse(frame.interval).ms:
        raise NoCandles(f"the candles are {frame.interval}: a finer {interval} can't be made from them")
    try:
        return resample(frame, interval)
    except ValueError as exc:
        raise NoCandles(str(exc)) from None


def _from_file(q: CandleQuery) -> LoadedCandles:
    from marketpulse.marketdata.klines_csv import read_klines_frame

    assert q.file is not None
    label = q.file_label or str(q.file)
    frames = read_klines_frame(q.file, q.symbol)
    if not frames:
        raise NoCandles(f"{label}: no candles" + (f" for {q.symbol}" if q.symbol else ""))
    if len(frames) > 1:
        raise NoCandles(f"{label} holds {len(frames)} symbols; name one with symbol (e.g. {next(iter(frames))})")
    frame = next(iter(frames.values()))
    try:
        Interval.parse(frame.interval)  # read off the file's spacing: it may be none of ours
    except ValueError as exc:
        raise NoCandles(f"{label}: {exc}") from None
    return LoadedCandles(frame, f"file:{label}")


CSV_SUFFIXES = (".csv", ".csv.gz")


def safe_data_path(data_dir: Path, name: str) -> Path:
    """A candle CSV inside `data_dir`: no absolute paths, no escaping with .., nothing but .csv/.csv.gz — the API
    must never read (and echo parse errors from) other files there, such as the SQLite database."""
    root = data_dir.resolve()
    path = (root / name).resolve()
    if not path.name.lower().endswith(CSV_SUFFIXES):
        raise FieldError("data", "must name a .csv or .csv.gz file")
    if not path.is_relative_to(root) or not path.is_file():
        raise FieldError("data", f"no file {name!r} under the server's data directory")
    return path


def _from_library_or_sample(q: CandleQuery, library_root: Path) -> LoadedCandles:
    from marketpulse.marketdata.library import CandleLibrary

    if not q.symbol or q.interval is None:
        raise NoCandles("the candle library needs a symbol and an interval (or give a candle file)")
    library = CandleLibrary(library_root)
    for interval in dict.fromkeys((q.interval, Interval.M1)):
        frame = library.read(q.exchange, q.symbol, interval, q.start, q.end)
        if len(frame):
            return LoadedCandles(frame, f"library:{q.exchange}/{q.symbol}/{interval}")
    return _from_sample(q.symbol, q.interval, q.exchange)


def _from_sample(symbol: str, interval: Interval, exchange: str) -> LoadedCandles:
    from marketpulse.marketdata import sample
    from marketpulse.marketdata.klines_csv import read_klines_frame

    if symbol == "BTCUSDT" and interval.ms < Interval.H1.ms:
        path, name = sample.btcusdt_spot_1m_path(), "sample:btcusdt_spot_1m"
        frames = read_klines_frame(path, "BTCUSDT", interval="1m")
    else:
        path, name = sample.usdm_perp_1h_path(), "sample:usdm_perp_1h"
        frames = read_klines_frame(path, symbol, interval="1h")
    if symbol not in frames:
        raise NoCandles(
            f"no {exchange} {symbol} candles: not in the library nor in the bundled sample "
            "(import some: pulse data import FILE)"
        )
    return LoadedCandles(frames[symbol], name)
