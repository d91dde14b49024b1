"""CandleLibrary: append-only Parquet parts, dedupe, conflicts, gaps, ranges, validation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import UnknownIntervalError
from marketpulse.marketdata.library import CandleLibrary, Gap
from marketpulse.marketdata.library.store import SeriesKey

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
M = 60_000


def minutes(indices: list[int] | range, *, base: float = 100.0, symbol: str = "BTCUSDT") -> CandleFrame:
    """One-minute candles at T0 + i minutes, values derived from i so any mix-up shows."""
    i = np.asarray(list(indices), dtype=np.int64)
    f = i.astype(np.float64)
    return CandleFrame(T0 + i * M, base + f, base + f + 2, base + f - 1, base + f + 1, 10 + f, symbol, "1m")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def lib(tmp_path: Path) -> CandleLibrary:
    return CandleLibrary(tmp_path / "library")


def test_append_then_read_round_trips_exactly(lib: CandleLibrary) -> None:
    frame = minutes(range(5))
    report = lib.append("binance", "BTC/USDT", "1m", frame)
    assert (report.received, report.written, report.duplicates, report.conflicts) == (5, 5, 0, 0)
    assert report.path is not None and report.path.parent == lib.root / "exchange=binance/symbol=BTCUSDT/interval=1m"
    back = lib.read("binance", "BTCUSDT", "1m")
    for column in ("time", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(back, column), getattr(frame, column))
    assert back.time.dtype == np.int64 and (back.symbol, back.interval) == ("BTCUSDT", "1m")


def test_second_append_writes_a_new_file_and_leaves_the_first_untouched(lib: CandleLibrary) -> None:
    first = lib.append("binance", "BTCUSDT", "1m", minutes(range(0, 10)))
    assert first.path is not None
    before = digest(first.path)
    second = lib.append("binance", "BTCUSDT", "1m", minutes(range(10, 20)))
    assert second.path is not None and second.path != first.path
    assert digest(first.path) == before
    assert sorted(p.name for p in first.path.parent.iterdir()) == [first.path.name, second.path.name]
    assert lib.read("binance", "BTCUSDT", "1m").time.tolist() == [T0 + i * M for i in range(20)]


def test_overlapping_append_stores_only_new_candles(lib: CandleLibrary) -> None:
    lib.append("binance", "BTCUSDT", "1m", minutes(range(0, 10)))
    report = lib.append("binance", "BTCUSDT", "1m", minutes(range(5, 15)))
    assert (report.written, report.duplicates, report.conflicts) == (5, 5, 0)
    again = lib.append("binance", "BTCUSDT", "1m", minutes(range(0, 15)))
    assert (again.written, again.duplicates, again.path) == (0, 15, None)
    back = lib.read("binance", "BTCUSDT", "1m")
    assert back.time.tolist() == [T0 + i * M for i in range(15)]


def test_changed_values_for_stored_candles_are_conflicts_and_history_stays(lib: CandleLibrary) -> None:
    lib.append("binance", "BTCUSDT", "1m", minutes(range(0, 3)))
    report = lib.append("binance", "BTCUSDT", "1m", minutes(range(0, 4), base=500.0))
    assert (report.written, report.duplicates, report.conflicts) == (1, 0, 3)
    assert lib.read("binance", "BTCUSDT", "1m").open.tolist() == [100.0, 101.0, 102.0, 503.0]


def test_read_dedupes_parts_written_by_racing_writers_keeping_the_first(lib: CandleLibrary) -> None:
    lib.append("binance", "BTCUSDT", "1m", minutes(range(0, 4)))
    key = SeriesKey.of("binance", "BTCUSDT", "1m")
    late = minutes(range(2, 6), base=900.0)
    lib._write_part(key, late, np.ones(len(late), dtype=bool))  # a second writer that didn't see the first part
    back = lib.read("binance", "BTCUSDT", "1m")
    assert back.time.tolist() == [T0 + i * M for i in range(6)]
    assert back.open.tolist() == [100.0, 101.0, 102.0, 103.0, 904.0, 905.0]


def test_gaps_are_reported_not_filled(lib: CandleLibrary) -> None:
    report = lib.append("binance", "BTCUSDT", "1m", minutes([0, 1, 2, 5, 6, 10]))
    expected = [Gap(T0 + 3 * M, T0 + 5 * M, 2), Gap(T0 + 7 * M, T0 + 10 * M, 3)]
    assert report.gaps == expected
    assert lib.gaps("binance", "BTCUSDT", "1m") == expected
    assert len(lib.read("binance", "BTCUSDT", "1m")) == 6
    filled = lib.append("binance", "BTCUSDT", "1m", minutes([3, 4]))
    assert filled.gaps == [Gap(T0 + 7 * M, T0 + 10 * M, 3)]


def test_read_range_is_half_open_and_spans_parts(lib: CandleLibrary) -> None:
    lib.append("binance", "BTCUSDT", "1m", minutes(range(0, 10)))
    lib.append("binance", "BTCUSDT", "1m", minutes(range(10, 20)))
    part = lib.read("binance", "BTCUSDT", "1m", start_ms=T0 + 8 * M, end_ms=T0 + 12 * M)
    assert part.time.tolist() == [T0 + i * M for i in (8, 9, 10, 11)]
    assert len(lib.read("binance", "BTCUSDT", "1m", start_ms=T0 + 100 * M)) == 0
    assert len(lib.read("binance", "ETHUSDT", "1m")) == 0


def test_list_describes_every_series(lib: CandleLibrary) -> None:
    lib.append("binance", "BTCUSDT", "1m", minutes([0, 1, 3]))
    lib.append("binance", "BTCUSDT", "1m", minutes([4]))
    lib.append("bybit", "ETH/USDT", "1m", minutes(range(3), symbol="ETHUSDT"))
    infos = {(i.key.exchange, i.key.symbol, i.key.interval): i for i in lib.list()}
    btc = infos[("binance", "BTCUSDT", "1m")]
    assert (btc.rows, btc.first_ms, btc.last_ms, btc.files, btc.missing) == (4, T0, T0 + 4 * M, 2, 1)
    assert btc.gaps == [Gap(T0 + 2 * M, T0 + 3 * M, 1)] and btc.bytes > 0
    assert infos[("bybit", "ETHUSDT", "1m")].rows == 3
    assert CandleLibrary(lib.root / "nowhere").list() == []


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (minutes([0, 2, 1]), "row 2: open time .* is not after"),
        (minutes([0, 1, 1]), "row 2: open time .* is not after"),
        (CandleFrame(np.asarray([T0 + 30_000]), *[np.ones(1)] * 5, "BTCUSDT", "1m"), "row 0: .* not on a 1m boundary"),
        (CandleFrame(np.asarray([T0]), np.ones(1), np.asarray([np.nan]), *[np.ones(1)] * 3, "X", "1m"), "high"),
    ],
)
def test_bad_frames_are_refused_and_nothing_is_written(lib: CandleLibrary, frame: CandleFrame, problem: str) -> None:
    lib.append("binance", "BTCUSDT", "1m", minutes(range(0, 3)))
    with pytest.raises(ValueError, match=problem):
        lib.append("binance", "BTCUSDT", "1m", frame)
    assert len(list((lib.root / "exchange=binance/symbol=BTCUSDT/interval=1m").iterdir())) == 1


def test_unknown_interval_and_unsafe_names_are_refused(lib: CandleLibrary) -> None:
    with pytest.raises(UnknownIntervalError, match="unknown interval '7x'"):
        lib.append("binance", "BTCUSDT", "7x", minutes(range(2)))
    with pytest.raises(ValueError, match="exchange '..'"):
        lib.read("..", "BTCUSDT", "1m")
    with pytest.raises(ValueError, match="symbol"):
        lib.read("binance", "../../etc", "1m")
    assert not lib.root.exists()
