"""`pulse detect …`: run detectors offline over files.

`pulse detect spikes --klines FILE` replays a klines CSV (the ../shared/data layouts, gzip or plain; see
`marketpulse.marketdata.klines_csv`) through the live volume-spike detector and prints every alert it would raise,
one JSON object per line (the alert's wire form: camelCase, epoch-ms times), in time order. 1-minute candles are
scanned every 5 minutes exactly as live; hourly candles are evaluated once per hour at its close (SPIKE only).
A short summary goes to stderr, so stdout stays pure JSON lines. Bad input: exit code 2 and a message naming the file
and line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import orjson
import typer

from marketpulse.cli.errors import fail
from marketpulse.detection.models import VolumeAlert
from marketpulse.detection.volume_spike import VolumeSpikeDetector, detect_offline
from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.klines_csv import KlinesFormatError, read_kline_columns
from marketpulse.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Run detectors offline over candle files.")

@app.command("spikes")
def spikes(
    klines: Annotated[Path, typer.Option("--klines", help="Klines CSV (.csv or .csv.gz), 1m or 1h candles")],
    ratio: Annotated[
        float | None, typer.Option(min=0.0, help="Spike when this hour ≥ RATIO × last hour [PULSE_SPIKE_RATIO]")
    ] = None,
    min_quote_volume: Annotated[
        float | None,
        typer.Option(min=0.0, help="…and ≥ this many USDT [PULSE_SPIKE_MIN_QUOTE_VOLUME]"),
    ] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol (files with a symbol column)")] = None,
) -> None:
    """Print the volume-spike alerts the live detector would raise over a klines file, one JSON line each."""
    settings = get_settings()
    detector = VolumeSpikeDetector(
        ratio=settings.spike_ratio if ratio is None else ratio,
        min_quote_volume=settings.spike_min_quote_volume if min_quote_volume is None else min_quote_volume,
    )
    started = time.perf_counter()
    try:
        columns = read_kline_columns(klines, symbol=symbol)
    except KlinesFormatError as exc:
        fail(exc.problem, file=exc.path, line=exc.line)
    if len(columns):
        try:
            Interval.parse(columns.interval)
        except ValueError as exc:
            fail(f"the candles are {columns.interval} apart: {exc}", file=klines)
    loaded = time.perf_counter()
    count = _print_alerts(detect_offline(columns, detector))
    done = time.perf_counter()
    typer.echo(
        f"{count} alerts from {len(columns)} {columns.interval} candles of {len(columns.names)} symbol(s); "
        f"read {loaded - started:.2f}s, detect {done - loaded:.2f}s",
        err=True,
    )


def _print_alerts(alerts: Iterable[VolumeAlert]) -> int:
    out = sys.stdout.buffer
    count = 0
    try:
        for alert in alerts:
            wire = alert.to_wire()
            del wire["id"]  # offline alerts are never stored
            out.write(orjson.dumps(wire) + b"\n")
            count += 1
        out.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return count
