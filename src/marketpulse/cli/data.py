"""`pulse data …`: the Parquet market-data library (import, download, list, resample).

Thin: argument parsing, progress bars and messages here; the work is in `marketpulse.marketdata.library`.
Bad input (unknown interval, malformed file, bad date, unknown exchange or symbol) exits 2 (`cli.errors.fail`)
with a message naming the problem (and the file and line); nothing already stored is touched by a failed command.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from marketpulse.cli.errors import fail, option_interval, option_time
from marketpulse.clock import Clock, SystemClock
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.klines_csv import KlinesFormatError, read_klines_frame
from marketpulse.marketdata.library import AppendReport, CandleLibrary, find_gaps
from marketpulse.marketdata.models import normalize_symbol
from marketpulse.marketdata.resample import resample
from marketpulse.settings import Settings
from marketpulse.times import utc_text

app = typer.Typer(no_args_is_help=True, help="The market-data library (Parquet candles).")
console = Console(soft_wrap=True)  # messages carry file paths: never break them across lines
errors = Console(stderr=True, soft_wrap=True)  # progress bars
FLUSH_ROWS = 100_000  # a download appends every this many candles, so an interrupted one keeps its progress
clock: Clock = SystemClock()  # module-level so tests can move "now"


def library() -> CandleLibrary:
    # A fresh Settings, not the cached one: each command reads PULSE_DATA_DIR as it is now.
    return CandleLibrary(Settings().data_dir / "library")


@contextmanager
def progress_bar() -> Iterator[Progress]:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=errors, transient=True) as progress:
        yield progress


# --- import ------------------------------------------------------------------------------------------------------


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="Klines CSV (gzip or plain): the layouts of ../shared/data or the seed's"),
    symbol: str | None = typer.Option(None, help="Only this symbol (multi-symbol files); default: every symbol"),
    interval: str | None = typer.Option(None, help="Candle interval, e.g. 1m or 1h; default: read from the data"),
    exchange: str = typer.Option(
        "binance", help="The library's exchange level: binance (spot), binance_swap (USDⓈ-M perpetuals), …"
    ),
) -> None:
    """Import candles from a CSV file into the library (only candles it doesn't hold yet are written).

    Spot and perpetual candles of one symbol are different series: import the perpetual files of ../shared/data
    with --exchange binance_swap, the name `pulse data download` gives perpetuals from binance."""
    if interval is not None:
        option_interval(interval, "--interval")
    started = time.perf_counter()
    with progress_bar() as progress:
        progress.add_task(f"reading {file.name}", total=None)
        try:
            frames = read_klines_frame(file, symbol, interval=interval)
        except KlinesFormatError as exc:
            fail(exc.problem, file=exc.path, line=exc.line)
    if not frames:
        fail(f"no rows for symbol {symbol!r}" if symbol else "no candles", file=file)
    if symbol is None and list(frames) == ["UNKNOWN"]:  # klines_csv's name when neither a column nor the file says
        fail("no symbol column and no symbol in the file name; pass --symbol", file=file)
    for frame in frames.values():
        check_interval_matches(file, frame)
    reports = append_all(exchange, frames)
    print_import_summary(file, reports, time.perf_counter() - started)


def check_interval_matches(file: Path, frame: CandleFrame) -> None:
    try:
        step = Interval.parse(frame.interval).ms
    except ValueError as exc:
        fail(f"{frame.symbol}: {exc}; pass --interval", file=file)
    steps = np.diff(frame.time)
    if len(steps) and int(steps.min()) != step:
        fail(f"{frame.symbol}: candles are {int(steps.min()) // 1000} s apart, not {frame.interval}", file=file)
    misaligned = np.flatnonzero(frame.time % step)
    if len(misaligned):
        at = int(frame.time[misaligned[0]])
        fail(f"{frame.symbol}: open time {at} ({utc_text(at)}) is not on a {frame.interval} boundary", file=file)


def append_all(exchange: str, frames: dict[str, CandleFrame]) -> list[AppendReport]:
    store = library()
    reports = []
    with progress_bar() as progress:
        task = progress.add_task("writing", total=sum(len(f) for f in frames.values()))
        for name, frame in frames.items():
            progress.update(task, description=f"writing {name}")
            try:
                reports.append(store.append(exchange, name, frame.interval, frame))
            except ValueError as exc:
                fail(f"{name}: {exc}")
            progress.advance(task, len(frame))
    return reports


def print_import_summary(file: Path, reports: list[AppendReport], seconds: float) -> None:
    written = sum(r.written for r in reports)
    duplicates = sum(r.duplicates for r in reports)
    conflicts = sum(r.conflicts for r in reports)
    console.print(
        f"Imported {written:,} candles for {len(reports)} symbol(s) from {file} in {seconds:.1f} s "
        f"({duplicates:,} already stored, {conflicts:,} conflicting kept as stored)."
    )
    with_gaps = [r for r in reports if r.gaps]
    for report in with_gaps[:20]:
        missing = sum(g.missing for g in report.gaps)
        first = report.gaps[0]
        console.print(
            f"  gaps: {report.key.symbol} {report.key.interval}: {len(report.gaps)} gap(s), {missing:,} candles "
            f"missing (first {utc_text(first.start_ms)} → {utc_text(first.end_ms)})"
        )
    if len(with_gaps) > 20:
        console.print(f"  … and {len(with_gaps) - 20} more series with gaps (see `pulse data list`)")


# --- download ----------------------------------------------------------------------------------------------------


@app.command()
def download(
    symbol: str = typer.Option(..., help="ccxt symbol: BTC/USDT (spot), BTC/USDT:USDT (USDT perpetual)"),
    interval: str = typer.Option(..., help="Candle interval, e.g. 1m, 1h, 1d"),
    since: str = typer.Option(..., help="First candle: YYYY-MM-DD, an ISO 8601 time (UTC unless given) or epoch ms"),
    until: str | None = typer.Option(None, help="Stop before this time; default: the last closed candle"),
    exchange: str = typer.Option("binance", help="ccxt exchange id"),
    api_url: str | None = typer.Option(None, help="Send API calls to this scheme://host instead (mirror, test)"),
) -> None:
    """Download candles through ccxt (paginated, rate-limited) and append them to the library."""
    # Imported here: ccxt takes over a second to import, and every other `pulse` command would pay for it.
    from marketpulse.marketdata.library.download import DownloadError, fetch_pages, library_exchange, open_exchange

    step = option_interval(interval, "--interval").ms
    since_ms = option_time(since, "--since")
    now = clock.now_ms()
    until_ms = min(option_time(until, "--until") if until else now, now - now % step)  # the forming candle: not yet
    if until_ms <= since_ms:
        fail(f"--until: nothing to fetch: {utc_text(since_ms)} is not before {utc_text(until_ms)}")
    store = library()
    reports: list[AppendReport] = []
    try:
        source = open_exchange(exchange, api_url=api_url)
        stored_as = library_exchange(source, symbol)
        with progress_bar() as progress:
            task = progress.add_task(f"{exchange} {symbol} {interval}", total=(until_ms - since_ms) // step)
            buffered: list[CandleFrame] = []
            for page in fetch_pages(source, symbol, interval, since_ms, until_ms):
                buffered.append(page)
                progress.update(task, completed=(int(page.time[-1]) + step - since_ms) // step)
                if sum(len(f) for f in buffered) >= FLUSH_ROWS:
                    reports.append(store.append(stored_as, symbol, interval, concat(buffered)))
                    buffered = []
            if buffered:
                reports.append(store.append(stored_as, symbol, interval, concat(buffered)))
    except DownloadError as exc:
        fail(f"{exchange} {symbol}: {exc}")
    written = sum(r.written for r in reports)
    key_gaps = store.gaps(stored_as, symbol, interval)
    console.print(
        f"Downloaded {sum(r.received for r in reports):,} candles of {symbol} {interval} from {exchange} "
        f"({utc_text(since_ms)} → {utc_text(until_ms)}): {written:,} new, {len(key_gaps)} gap(s) in the series "
        f"(stored as {stored_as} {normalize_symbol(symbol)} {interval})."
    )


def concat(frames: list[CandleFrame]) -> CandleFrame:
    def column(name: str) -> np.ndarray:
        return np.concatenate([getattr(f, name) for f in frames])

    return CandleFrame(
        column("time"), column("open"), column("high"), column("low"), column("close"), column("volume"),
        frames[0].symbol, frames[0].interval,
    )  # fmt: skip


# --- list --------------------------------------------------------------------------------------------------------


@app.command("list")
def list_series() -> None:
    """Every series in the library: candles, time range, gaps, files and size."""
    store = library()
    series = store.list()
    if not series:
        console.print(f"The library at {store.root} is empty: add candles with `pulse data import` or `download`.")
        return
    table = Table(title=f"Candle library ({store.root})")
    for name, justify in (("exchange", "left"), ("symbol", "left"), ("interval", "left"), ("candles", "right"),
                          ("first (UTC)", "left"), ("last (UTC)", "left"), ("gaps", "right"),
                          ("missing", "right"), ("files", "right"), ("size", "right")):  # fmt: skip
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for info in series:
        table.add_row(
            info.key.exchange, info.key.symbol, info.key.interval, f"{info.rows:,}",
            utc_text(info.first_ms), utc_text(info.last_ms), str(len(info.gaps)), f"{info.missing:,}",
            str(info.files), f"{info.bytes / 1e6:.1f} MB",
        )  # fmt: skip
    # Piped output has no terminal width (Rich assumes 80); give the table room rather than eliding every cell.
    (console if console.is_terminal else Console(width=140)).print(table)


# --- resample ----------------------------------------------------------------------------------------------------


@app.command("resample")
def resample_series(
    symbol: str = typer.Option(..., help="Library symbol, e.g. BTCUSDT"),
    from_interval: str = typer.Option(..., "--from", help="Source interval, e.g. 1m"),
    to_interval: str = typer.Option(..., "--to", help="Target interval: 5m, 15m, 1h, 4h, 1d…"),
    exchange: str = typer.Option("binance"),
) -> None:
    """Aggregate a stored series into a coarser one (exact OHLCV, UTC-aligned) and store it.

    Only complete buckets are stored: the still-forming last bucket, and any a gap runs through, are left out
    (and come in on a later run once complete)."""
    source_interval = option_interval(from_interval, "--from")
    option_interval(to_interval, "--to")
    store = library()
    with progress_bar() as progress:
        progress.add_task(f"resampling {symbol} {from_interval} → {to_interval}", total=None)
        source = store.read(exchange, symbol, from_interval)
        if not len(source):
            fail(f"no {from_interval} candles of {symbol} on {exchange} in the library (see `pulse data list`)")
        try:
            target = resample(source, to_interval)
        except ValueError as exc:
            fail(str(exc))
        report = store.append(exchange, symbol, to_interval, target)
    source_gaps = find_gaps(source.time, source_interval.ms)
    console.print(
        f"Resampled {len(source):,} {from_interval} candles of {report.key.symbol} into {len(target):,} "
        f"complete {to_interval} candles: {report.written:,} new, {report.duplicates:,} already stored, "
        f"{len(source_gaps)} gap(s) in the source."
    )
