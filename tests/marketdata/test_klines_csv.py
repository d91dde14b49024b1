"""read_klines / read_klines_frame on small constructed files: layouts, quote volume, sorting, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from marketpulse.marketdata.klines_csv import KlinesFormatError, read_klines, read_klines_frame

MIN = 60_000
T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC
HEADER = "open_time_ms,open,high,low,close,volume\n"


def write(path: Path, text: str, *, gz: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_minute_layout_with_quote_volume_plain_and_gzip_by_magic_bytes(tmp_path: Path) -> None:
    text = (
        "open_time_ms,open,high,low,close,volume,quote_volume,trades\n"
        f"{T0},10,12,9,11,2,21.5,7\n"
        f"{T0 + MIN},11,11,10,10.5,4,41,3\n"
    )
    # A gzip file with a misleading name still reads: the magic bytes decide.
    for path in (write(tmp_path / "btcusdt_1m.csv", text), write(tmp_path / "btcusdt.txt", text, gz=True)):
        candles = read_klines(path)
        assert [c.open_time for c in candles] == [T0, T0 + MIN]
        assert candles[0].symbol == "BTCUSDT" and candles[0].interval == "1m"
        assert candles[0].quote_volume == 21.5 and candles[1].quote_volume == 41.0
        assert candles[1].close == 10.5 and candles[1].closed


def test_symbol_column_sorted_and_quote_volume_is_volume_times_close(tmp_path: Path) -> None:
    hour = 3_600_000
    path = write(
        tmp_path / "perp_1h.csv.gz",
        "symbol,open_time_ms,open,high,low,close,volume\n"
        f"ETHUSDT,{T0 + hour},2,2,2,3,10\n"
        f"BTCUSDT,{T0},1,1,1,2,5\n"
        f"ETHUSDT,{T0},2,2,2,2,1\n",
        gz=True,
    )
    candles = read_klines(path)
    assert [(c.symbol, c.open_time) for c in candles] == [("BTCUSDT", T0), ("ETHUSDT", T0), ("ETHUSDT", T0 + hour)]
    assert [c.quote_volume for c in candles] == [10.0, 2.0, 30.0]
    assert {c.interval for c in candles} == {"1h"}
    assert [c.symbol for c in read_klines(path, symbol="eth-usdt")] == ["ETHUSDT", "ETHUSDT"]
    frames = read_klines_frame(path)
    assert sorted(frames) == ["BTCUSDT", "ETHUSDT"]
    assert frames["ETHUSDT"].time.tolist() == [T0, T0 + hour]
    assert frames["ETHUSDT"].close.tolist() == [2.0, 3.0] and frames["ETHUSDT"].interval == "1h"


def test_seed_layout_with_iso_or_ms_timestamps(tmp_path: Path) -> None:
    path = write(
        tmp_path / "seed.csv",
        "timestamp,open,high,low,close,volume,symbol\n"
        "2025-10-10T20:00:00Z,1,1,1,1,1,SOLUSDT\n"
        "2025-10-10T20:05:00Z,1,1,1,2,1,SOLUSDT\n",
    )
    candles = read_klines(path)
    assert [c.open_time for c in candles] == [T0, T0 + 5 * MIN]
    assert candles[0].interval == "5m"
    ms = write(tmp_path / "seed_ms.csv", f"timestamp,open,high,low,close,volume,symbol\n{T0},1,1,1,1,1,X\n")
    assert read_klines(ms, interval="1h")[0].interval == "1h"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("open_time_ms,open,high,low,close\n1,1,1,1,1\n", 1, "missing column(s) volume"),
        ("open,high,low,close,volume\n1,1,1,1,1\n", 1, "open_time_ms"),
        (f"{HEADER}{T0},1,1,1,1,1\n{T0 + MIN},1,abc,1,1,1\n", 3, "'abc' is not a number"),
        (f"open_time_ms,open,high,low,close,volume\n{T0},1,1,1,1\n", 2, "5 fields, the header has 6"),
        (f"open_time_ms,open,high,low,close,volume\n{T0},1,1,1,1,1\n{T0},1,1,1,1,2\n", 3, "duplicate"),
        (f"open_time_ms,open,high,low,close,volume\n{T0},1,1,1,1,-3\n", 2, "negative"),
        (f"open_time_ms,open,high,low,close,volume\n{T0},1,1,1,nan,1\n", 2, "not a finite number"),
        ("open_time_ms,open,high,low,close,volume\nyesterday,1,1,1,1,1\n", 2, "ISO 8601"),
        ("", 1, "empty file"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(KlinesFormatError) as info:
        read_klines(path)
    assert info.value.line == line
    assert info.value.path == str(path)
    assert fragment in str(info.value)
    assert f"{path}, line {line}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KlinesFormatError, match="no such file") as info:
        read_klines_frame(tmp_path / "nope.csv.gz")
    assert info.value.path.endswith("nope.csv.gz")


def test_header_only_bom_quotes_and_crlf(tmp_path: Path) -> None:
    assert read_klines(write(tmp_path / "empty.csv", HEADER)) == []
    path = tmp_path / "excel.csv"
    header = b'\xef\xbb\xbf"open_time_ms","open","high","low","close","volume"\r\n'
    path.write_bytes(header + f"{T0},1,2,0.5,1.5,4\r\n".encode())
    [c] = read_klines(path, symbol="solusdt")
    assert (c.symbol, c.open_time, c.high, c.quote_volume) == ("SOLUSDT", T0, 2.0, 6.0)
