"""One `!ticker@arr` frame through the Binance source's hot path: parse → normalize → MarketTable → detector.

    .venv/bin/python -m bench.frame_pipeline [--iterations 3000] [--symbols 600]

The frame: 600 tickers in Binance's wire format (numbers as strings, all 18 fields). With ../shared/data present,
the 522 USD-M perpetuals' real last-24h prices and volumes (from the hourly klines) plus USDC-margined twins of the
most liquid ones to make 600 — like the live frame, which carries contracts the source filters out. Without it,
a seeded synthetic universe. Baselines in the same run: `json.loads` + reading the fields from dicts, and
msgspec parsing alone. Each row is the per-frame median and p99 over `--iterations` frames (after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from marketpulse.detection.volume_spike import VolumeSpikeDetector
from marketpulse.marketdata.binance.frames import TICKER_STREAM, TickerBatch, TickerEvent, decode_frame
from marketpulse.marketdata.table import MarketTable

SHARED_KLINES = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance_usdm_perp_1h_522sym_90d.csv.gz"
EVENT_TIME = 1_761_228_000_000
DAY_MS = 86_400_000


def ticker(
    symbol: str, open_: float, high: float, low: float, last: float, volume: float, quote: float
) -> dict[str, Any]:
    change = last - open_
    return {
        "e": "24hrTicker", "E": EVENT_TIME, "s": symbol, "p": f"{change:.8g}", "P": f"{change / open_ * 100:.3f}",
        "w": f"{quote / volume if volume else last:.8g}", "c": f"{last:.8g}", "Q": "12.5", "o": f"{open_:.8g}",
        "h": f"{high:.8g}", "l": f"{low:.8g}", "v": f"{volume:.3f}", "q": f"{quote:.2f}", "O": EVENT_TIME - DAY_MS,
        "C": EVENT_TIME, "F": 6_123_456_789, "L": 6_124_456_789, "n": 1_000_000,
    }  # fmt: skip


def real_tickers() -> list[dict[str, Any]]:
    """Each symbol's last 24 hourly candles in the shared file, folded into a 24h ticker."""
    import pyarrow.compute as pc
    import pyarrow.csv as pv

    table = pv.read_csv(SHARED_KLINES)
    last_day = table.filter(pc.greater(table["open_time_ms"], pc.max(table["open_time_ms"]).as_py() - DAY_MS))
    hours: dict[str, list[dict[str, Any]]] = {}
    for row in last_day.to_pylist():
        hours.setdefault(row["symbol"], []).append(row)
    out = []
    for symbol, rows in hours.items():
        volume = sum(r["volume"] for r in rows)
        quote = sum(r["volume"] * r["close"] for r in rows)
        out.append(ticker(symbol, rows[0]["open"], max(r["high"] for r in rows), min(r["low"] for r in rows),
                          rows[-1]["close"], volume, quote))
    return sorted(out, key=lambda t: -float(t["q"]))


def synthetic_tickers(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        price = 10 ** rng.uniform(-5, 5)
        last = price * rng.uniform(0.85, 1.15)
        quote = 10 ** rng.uniform(5.5, 10.5)
        out.append(ticker(f"SYN{i}USDT", price, max(price, last) * 1.02, min(price, last) * 0.98, last,
                          quote / price, quote))
    return out


def build_frame(symbols: int) -> tuple[bytes, frozenset[str], str]:
    if SHARED_KLINES.is_file():
        tickers, origin = real_tickers(), f"real: {SHARED_KLINES.name}"
        twins = [{**t, "s": t["s"].removesuffix("USDT") + "USDC"} for t in tickers[: max(0, symbols - len(tickers))]]
        tickers = (tickers + twins)[:symbols]
    else:
        tickers, origin = synthetic_tickers(symbols), "synthetic (../shared/data absent)"
    active = frozenset(t["s"] for t in tickers if t["s"].endswith("USDT"))
    frame = json.dumps({"stream": TICKER_STREAM, "data": tickers}, separators=(",", ":"), ensure_ascii=False)
    return frame.encode(), active, origin  # compact UTF-8, "stream" first: as Binance sends it


class _Envelope(msgspec.Struct):
    stream: str
    data: list[TickerEvent]


def measure(steps: list[Callable[[], object]], iterations: int) -> list[tuple[float, float]]:
    """(median, p99) ms per step. Steps take turns within each iteration, so load from other work on the machine
    falls on all of them alike and their ratios stay comparable."""
    for _ in range(max(50, iterations // 20)):
        for step in steps:
            step()
    samples: list[list[int]] = [[] for _ in steps]
    for _ in range(iterations):
        for step, out in zip(steps, samples, strict=True):
            start = time.perf_counter_ns()
            step()
            out.append(time.perf_counter_ns() - start)
    result = []
    for out in samples:
        out.sort()
        result.append((statistics.median(out) / 1e6, out[min(len(out) - 1, int(len(out) * 0.99))] / 1e6))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--symbols", type=int, default=600)
    args = parser.parse_args()

    raw, active, origin = build_frame(args.symbols)
    table, detector = MarketTable(), VolumeSpikeDetector()
    envelope_decoder = msgspec.json.Decoder(_Envelope, strict=False)

    def json_baseline() -> object:
        frame = json.loads(raw)
        return [(d["s"], d["E"], float(d["c"]), float(d["o"]), float(d["h"]), float(d["l"]), float(d["P"]),
                 float(d["v"]), float(d["q"])) for d in frame["data"]]

    def whole_path() -> object:
        batch = decode_frame(raw)
        assert isinstance(batch, TickerBatch)
        rows = table.apply_tickers([t for t in batch.tickers if t.symbol in active])
        detector.on_market_rows(rows)
        return rows

    def whole_path_and_bus_payload() -> object:
        return [msgspec.to_builtins(r) for r in whole_path()]  # type: ignore[attr-defined]

    steps: list[tuple[str, Callable[[], object]]] = [
        ("baseline: `json.loads` + dict access (floats of the 9 used fields)", json_baseline),
        ("baseline: msgspec parse alone (typed Structs, lax numbers)", lambda: envelope_decoder.decode(raw)),
        ("`decode_frame`: parse + normalize to `Ticker24h`", lambda: decode_frame(raw)),
        ("**whole path**: decode_frame → filter active → `MarketTable.apply_tickers` → "
         "`VolumeSpikeDetector.on_market_rows`", whole_path),
        ("whole path + `msgspec.to_builtins` of the changed rows (the bus payload)", whole_path_and_bus_payload),
    ]
    load = os.getloadavg()[0]
    print(f"Frame: {args.symbols} tickers ({len(active)} active USDT perpetuals), {len(raw) / 1024:.0f} KiB, {origin}; "
          f"{args.iterations} iterations, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {load:.1f} at start\n")
    print("| step | median ms/frame | p99 ms/frame |")
    print("| --- | ---: | ---: |")
    for (name, _), (median, p99) in zip(steps, measure([s for _, s in steps], args.iterations), strict=True):
        print(f"| {name} | {median:.3f} | {p99:.3f} |")


if __name__ == "__main__":
    main()
