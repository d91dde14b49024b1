"""Cut the repository's compact real-data sample out of ../shared/data (deterministic; rerun to regenerate).

    .venv/bin/python scripts/make_sample.py [--shared ../shared/data]

Writes into src/marketpulse/marketdata/sample/:
- usdm_perp_1h_2025-10-07_2025-10-14.csv.gz: every USD-M perpetual, hourly, 2025-10-07 00:00 up to (not
  including) 2025-10-14 00:00 UTC, around the 2025-10-10 21:00 liquidation cascade.
- btcusdt_spot_1m_2025-10-09_2025-10-12.csv.gz: Binance spot BTCUSDT minutes for the three days around it.

Lines are copied byte for byte (same header, number formatting and sort order as ../shared/data, so the same
reader works) and gzip is written with mtime 0, so the same input always gives identical files.
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "src" / "marketpulse" / "marketdata" / "sample"
DEFAULT_SHARED = ROOT.parent / "shared" / "data"


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# (source file, target file, first open time, end open time exclusive)
CUTS = (
    ("binance_usdm_perp_1h_522sym_90d.csv.gz", "usdm_perp_1h_2025-10-07_2025-10-14.csv.gz",
     _ms("2025-10-07T00:00"), _ms("2025-10-14T00:00")),
    ("binance_btcusdt_spot_1m.csv.gz", "btcusdt_spot_1m_2025-10-09_2025-10-12.csv.gz",
     _ms("2025-10-09T00:00"), _ms("2025-10-12T00:00")),
)


def lines_in_window(source: Path, start_ms: int, end_ms: int) -> Iterator[str]:
    """The header, then every data line whose open_time_ms falls in [start_ms, end_ms)."""
    with gzip.open(source, "rt", encoding="utf-8", newline="") as handle:
        header = handle.readline()
        time_column = header.rstrip("\r\n").split(",").index("open_time_ms")
        yield header
        for line in handle:
            if start_ms <= int(line.split(",", time_column + 1)[time_column]) < end_ms:
                yield line


def write_gzip(target: Path, lines: Iterator[str]) -> int:
    # mtime=0 and no file name in the header: regenerating gives the same bytes, so git sees no change.
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        rows = -1
        for line in lines:
            gz.write(line.encode("utf-8"))
            rows += 1
    return rows


def make_sample(shared: Path, out_dir: Path) -> list[tuple[Path, int]]:
    """Write every cut into `out_dir`; returns (file, rows) for each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source_name, target_name, start_ms, end_ms in CUTS:
        target = out_dir / target_name
        written.append((target, write_gzip(target, lines_in_window(shared / source_name, start_ms, end_ms))))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the ../shared/data directory")
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR, help="where to write (default: the package)")
    args = parser.parse_args()
    for target, rows in make_sample(args.shared, args.out):
        print(f"{target}: {rows} rows, {target.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
