"""The candles a backtest job runs on: the one loader behind POST /api/v1/backtests.

From a CSV file under `data_dir` (`data`), else the Parquet library (`data_dir/library`, resampled from a finer
interval when needed), else the repository's bundled sample. Only `load_candles` is meant to be called from outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from marketpulse.backtest.schemas import BacktestRequest, FieldError
from marketpulse.marketdata.frame import CandleFrame


class NoCandles(LookupError):
    pass


@dataclass(frozen=True)
class LoadedCandles:
    frame: CandleFrame
    source: str  # where they came from, reported with the result


def load_candles(req: BacktestRequest, data_dir: Path) -> LoadedCandles:
    """The request's candles at its interval, in [from, to); NoCandles explains what is missing."""
    loaded = _from_file(req, data_dir) if req.data is not None else _from_library_or_sample(req, data_dir)
    frame = loaded.frame.between(req.start, req.end)
    frame = _at_interval(frame, req.interval)
    if len(frame) < 2:
        raise NoCandles(f"{loaded.source}: fewer than 2 {req.interval} candles in the requested range")
    return LoadedCandles(frame, loaded.source)


def _at_interval(frame: CandleFrame, interval: str) -> CandleFrame:
    from marketpulse.marketdata.library import interval_ms, resample

    if frame.interval == interval:
        return frame
    if interval_ms(interval) < interval_ms(frame.interval):
        raise NoCandles(f"the candles are {frame.interval}: a finer {interval} can't be made from them")
    return resample(frame, interval)


def _from_file(req: BacktestRequest, data_dir: Path) -> LoadedCandles:
    from marketpulse.marketdata.klines_csv import read_klines_frame

    assert req.data is not None
    path = safe_data_path(data_dir, req.data)
    frames = read_klines_frame(path, req.symbol)
    if len(frames) != 1:
        raise NoCandles(f"{req.data} holds {len(frames)} symbols; name one with symbol")
    return LoadedCandles(next(iter(frames.values())), f"file:{req.data}")


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


def _from_library_or_sample(req: BacktestRequest, data_dir: Path) -> LoadedCandles:
    from marketpulse.marketdata.library import CandleLibrary

    assert req.symbol is not None
    library = CandleLibrary(data_dir / "library")
    for interval in dict.fromkeys((req.interval, "1m")):
        frame = library.read(req.exchange, req.symbol, interval, req.start, req.end)
        if len(frame):
            return LoadedCandles(frame, f"library:{req.exchange}/{req.symbol}/{interval}")
    return _from_sample(req)


def _from_sample(req: BacktestRequest) -> LoadedCandles:
    from marketpulse.marketdata import sample
    from marketpulse.marketdata.klines_csv import read_klines_frame
    from marketpulse.marketdata.library import interval_ms

    if req.symbol == "BTCUSDT" and interval_ms(req.interval) < 3_600_000:
        path, name = sample.btcusdt_spot_1m_path(), "sample:btcusdt_spot_1m"
        frames = read_klines_frame(path, "BTCUSDT", interval="1m")
    else:
        path, name = sample.usdm_perp_1h_path(), "sample:usdm_perp_1h"
        frames = read_klines_frame(path, req.symbol, interval="1h")
    if req.symbol not in frames:
        raise NoCandles(
            f"no {req.symbol} candles: the library ({req.exchange}) has none and the bundled sample doesn't hold it "
            "(import some: pulse data import FILE)"
        )
    return LoadedCandles(frames[req.symbol], name)
