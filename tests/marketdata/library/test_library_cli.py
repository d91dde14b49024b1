"""`pulse data import | download | list | resample`, through the Typer app, on a library under tmp_path."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fakes.ccxt_exchange import FakeCcxtExchange, kline
from marketpulse.cli import data
from marketpulse.clock import FakeClock
from marketpulse.marketdata.library import CandleLibrary, Gap
from marketpulse.marketdata.library.download import (
    DownloadError,
    fetch_pages,
    library_exchange_name,
    open_exchange,
)

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
M = 60_000
H = 3_600_000
runner = CliRunner()


@pytest.fixture
def lib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CandleLibrary:
    monkeypatch.setenv("PULSE_DATA_DIR", str(tmp_path / "var"))
    return CandleLibrary(tmp_path / "var" / "library")


def pulse_data(*args: str) -> tuple[int, str]:
    result = runner.invoke(data.app, list(args))
    return result.exit_code, result.output


def shared_layout(path: Path, rows: list[tuple[str, int]], *, gz: bool = False) -> Path:
    """A file in ../shared/data's futures layout: symbol,open_time_ms,open,high,low,close,volume."""
    lines = ["symbol,open_time_ms,open,high,low,close,volume"]
    lines += [f"{s},{t},{100 + i},{102 + i},{99 + i},{101 + i},{5 + i}" for i, (s, t) in enumerate(rows)]
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_import_multi_symbol_file_imports_every_symbol(lib: CandleLibrary, tmp_path: Path) -> None:
    rows = [("BTCUSDT", T0 + i * H) for i in range(5)] + [("ETHUSDT", T0 + i * H) for i in (0, 1, 4)]
    file = shared_layout(tmp_path / "perp_1h.csv.gz", rows, gz=True)
    code, out = pulse_data("import", str(file), "--interval", "1h")
    assert code == 0, out
    assert "Imported 8 candles for 2 symbol(s)" in out
    assert "ETHUSDT 1h: 1 gap(s), 2 candles missing" in out
    btc = lib.read("binance", "BTCUSDT", "1h")
    assert btc.time.tolist() == [T0 + i * H for i in range(5)]
    assert btc.open.tolist() == [100, 101, 102, 103, 104] and btc.volume.tolist() == [5, 6, 7, 8, 9]
    assert lib.gaps("binance", "ETHUSDT", "1h") == [Gap(T0 + 2 * H, T0 + 4 * H, 2)]


def test_import_symbol_filter_and_reimport_stores_nothing_twice(lib: CandleLibrary, tmp_path: Path) -> None:
    file = shared_layout(tmp_path / "k.csv", [("BTCUSDT", T0 + i * H) for i in range(3)] + [("ETHUSDT", T0)])
    assert pulse_data("import", str(file), "--symbol", "eth-usdt", "--interval", "1h")[0] == 0
    assert [i.key.symbol for i in lib.list()] == ["ETHUSDT"]
    assert pulse_data("import", str(file), "--interval", "1h")[0] == 0
    code, out = pulse_data("import", str(file), "--exchange", "binance")  # interval read from the data
    assert code == 0 and "Imported 0 candles" in out and "4 already stored" in out
    assert {i.key.symbol: i.files for i in lib.list()} == {"BTCUSDT": 1, "ETHUSDT": 1}


def test_import_seed_layout(lib: CandleLibrary, tmp_path: Path) -> None:
    file = tmp_path / "seed.csv"
    file.write_text(
        "timestamp,open,high,low,close,volume,symbol\n"
        "2024-01-01T00:00:00Z,1,2,0.5,1.5,10,SOLUSDT\n"
        "2024-01-01T00:01:00Z,1.5,2.5,1,2,11,SOLUSDT\n"
    )
    code, out = pulse_data("import", str(file), "--symbol", "SOLUSDT", "--interval", "1m")
    assert code == 0, out
    sol = lib.read("binance", "SOLUSDT", "1m")
    assert sol.time.tolist() == [T0, T0 + M] and sol.close.tolist() == [1.5, 2.0]


def test_import_errors_name_the_problem_and_store_nothing(lib: CandleLibrary, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,open_time_ms,open,high,low,close,volume\nBTCUSDT,1704067200000,1,2,0.5,oops,3\n")
    code, out = pulse_data("import", str(bad), "--interval", "1m")
    assert code == 2 and f"{bad}, line 2" in out and "close" in out
    code, out = pulse_data("import", str(tmp_path / "missing.csv"), "--interval", "1m")
    assert code == 2 and "missing.csv" in out and "no such file" in out
    good = shared_layout(tmp_path / "good.csv", [("BTCUSDT", T0), ("BTCUSDT", T0 + H)])
    code, out = pulse_data("import", str(good), "--interval", "7x")
    assert code == 2 and "unknown interval '7x'" in out
    code, out = pulse_data("import", str(good), "--interval", "1m")  # hourly data declared as minutes
    assert code == 2 and "3600 s apart, not 1m" in out
    code, out = pulse_data("import", str(good), "--interval", "1h", "--symbol", "DOGEUSDT")
    assert code == 2 and "no rows for symbol 'DOGEUSDT'" in out
    assert lib.list() == []
    anonymous = tmp_path / "candles.csv"
    anonymous.write_text("open_time_ms,open,high,low,close,volume\n1704067200000,1,2,0.5,1.5,3\n")
    code, out = pulse_data("import", str(anonymous), "--interval", "1m")
    assert code == 2 and "pass --symbol" in out
    assert pulse_data("import", str(anonymous), "--interval", "1m", "--symbol", "XRPUSDT")[0] == 0
    assert [i.key.symbol for i in lib.list()] == ["XRPUSDT"]


def test_list_and_resample(lib: CandleLibrary, tmp_path: Path) -> None:
    code, out = pulse_data("list")
    assert code == 0 and "empty" in out
    file = shared_layout(tmp_path / "m.csv", [("BTCUSDT", T0 + i * M) for i in range(130)])
    assert pulse_data("import", str(file), "--interval", "1m")[0] == 0
    code, out = pulse_data("resample", "--symbol", "BTCUSDT", "--from", "1m", "--to", "1h")
    assert code == 0, out
    assert "into 2 complete 1h candles: 2 new" in out
    hourly = lib.read("binance", "BTCUSDT", "1h")
    assert hourly.time.tolist() == [T0, T0 + H]
    assert (hourly.open[0], hourly.close[0], hourly.high[0], hourly.low[0]) == (100, 160, 161, 99)
    assert hourly.volume[0] == sum(5 + i for i in range(60))
    code, out = pulse_data("list")
    assert code == 0 and "BTCUSDT" in out and "1h" in out and "130" in out
    code, out = pulse_data("resample", "--symbol", "ETHUSDT", "--from", "1m", "--to", "1h")
    assert code == 2 and "no 1m candles of ETHUSDT" in out
    code, out = pulse_data("resample", "--symbol", "BTCUSDT", "--from", "1h", "--to", "1m")
    assert code == 2 and "not a whole multiple" in out


# --- download through real ccxt against the fake exchange ---------------------------------------------------------


@pytest.fixture
def exchange() -> Iterator[FakeCcxtExchange]:
    fake = FakeCcxtExchange(max_limit=100)  # forces pagination: 250 candles take three pages
    rows = [kline(T0 + i * H, 100 + i, 101 + i, 99 + i, 100.5 + i, 2 + i, H) for i in range(250) if i not in (120, 121)]
    fake.add_klines("BTC", "USDT", "1h", rows)
    with fake.running():
        yield fake


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock(T0 + 250 * H + 30 * M)  # the 250th hour is still forming
    monkeypatch.setattr(data, "clock", clock)
    return clock


def test_download_paginates_through_ccxt_and_reports_gaps(
    lib: CandleLibrary, exchange: FakeCcxtExchange, now: FakeClock
) -> None:
    code, out = pulse_data("download", "--symbol", "BTC/USDT", "--interval", "1h", "--since", "2024-01-01",
                           "--api-url", exchange.url)  # fmt: skip
    assert code == 0, out
    assert "Downloaded 248 candles of BTC/USDT 1h" in out and "1 gap(s)" in out
    assert "stored as binance BTCUSDT 1h" in out
    assert len(exchange.kline_requests) >= 3
    assert [int(q["startTime"]) for q in exchange.kline_requests[:2]] == [T0, T0 + 100 * H]
    btc = lib.read("binance", "BTCUSDT", "1h")
    assert len(btc) == 248 and btc.close[0] == 100.5 and btc.volume[-1] == 251
    assert lib.gaps("binance", "BTCUSDT", "1h") == [Gap(T0 + 120 * H, T0 + 122 * H, 2)]
    code, out = pulse_data("download", "--symbol", "BTC/USDT", "--interval", "1h", "--since", "2024-01-05",
                           "--until", "2024-01-06T12:00", "--api-url", exchange.url)  # fmt: skip
    assert code == 0 and "Downloaded 34 candles" in out and "0 new" in out  # 96..131 without 120, 121


def test_download_excludes_the_forming_candle(exchange: FakeCcxtExchange) -> None:
    source = open_exchange("binance", api_url=exchange.url)
    pages = list(fetch_pages(source, "BTC/USDT", "1h", T0 + 240 * H, T0 + 249 * H, sleep=lambda s: None))
    assert np.concatenate([p.time for p in pages]).tolist() == [T0 + i * H for i in range(240, 249)]


def test_download_retries_after_rate_limiting(exchange: FakeCcxtExchange) -> None:
    exchange.fail_next(2, status=429)
    slept: list[float] = []
    source = open_exchange("binance", api_url=exchange.url)
    pages = list(fetch_pages(source, "BTC/USDT", "1h", T0, T0 + 10 * H, sleep=slept.append))
    assert sum(len(p) for p in pages) == 10
    assert slept == [1.0, 2.0]  # exponential backoff between the retries


def test_download_gives_up_after_persistent_rate_limiting(exchange: FakeCcxtExchange) -> None:
    exchange.fail_next(100, status=429)
    source = open_exchange("binance", api_url=exchange.url)
    with pytest.raises(DownloadError, match="gave up after 5 retries"):
        list(fetch_pages(source, "BTC/USDT", "1h", T0, T0 + 10 * H, sleep=lambda s: None))


def test_download_errors(lib: CandleLibrary, exchange: FakeCcxtExchange, now: FakeClock) -> None:
    base = ["download", "--interval", "1h", "--api-url", exchange.url]
    code, out = pulse_data(*base, "--symbol", "BTC/USDT", "--since", "2024-13-45")
    assert code == 2 and "'2024-13-45' is not a time" in out
    code, out = pulse_data(*base, "--symbol", "BTC/USDT", "--since", "2024-01-01", "--exchange", "nosuchx")
    assert code == 2 and "unknown exchange 'nosuchx'" in out
    code, out = pulse_data(*base, "--symbol", "DOGE/BTC", "--since", "2024-01-01")
    assert code == 2 and "no market 'DOGE/BTC'" in out
    code, out = pulse_data(*base, "--symbol", "BTC/USDT", "--since", "2024-02-01", "--until", "2024-01-01")
    assert code == 2 and "nothing to fetch" in out
    code, out = pulse_data("download", "--interval", "2w", "--symbol", "BTC/USDT", "--since", "2024-01-01")
    assert code == 2 and "unknown interval '2w'" in out
    assert lib.list() == []


def test_perpetuals_are_stored_apart_from_spot() -> None:
    assert library_exchange_name("binance", {"symbol": "BTC/USDT", "type": "spot"}) == "binance"
    assert library_exchange_name("binance", {"symbol": "BTC/USDT:USDT", "type": "swap"}) == "binance_swap"
    assert library_exchange_name("binanceusdm", {"symbol": "BTC/USDT:USDT", "type": "swap"}) == "binanceusdm_swap"
