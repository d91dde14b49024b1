"""`pulse detect spikes` on small constructed files (expected alerts worked out by hand) and on bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from marketpulse.cli.main import app

MIN = 60_000
HOUR = 3_600_000
H = 1_760_126_400_000  # 2025-10-10 20:00 UTC


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["detect", "spikes", *args])


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.fixture
def minute_file(tmp_path: Path) -> Path:
    """BTCUSDT minutes: hour H-1 at $20k a minute ($1.2M), hour H at $10k a minute except $4M at H:03."""
    rows = ["open_time_ms,open,high,low,close,volume,quote_volume,trades"]
    for m in range(-60, 60):
        qv = 20_000 if m < 0 else 4_000_000 if m == 3 else 10_000
        close = 101 if m >= 0 else 100
        rows.append(f"{H + m * MIN},100,102,99,{close},1,{qv},5")
    path = tmp_path / "binance_btcusdt_spot_1m.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    return path


def test_minute_file_simulates_the_five_minute_scans(minute_file: Path) -> None:
    result = run("--klines", str(minute_file))
    assert result.exit_code == 0, result.output
    alerts = lines(result.stdout)
    # H:05 sees minutes 0–4: 4M + 4 × 10k = 4.04M ≥ 3 × 1.2M → SPIKE (first raised at :05, so a HALF_UPDATE follows);
    # H:30 sees 0–29: 4M + 29 × 10k; H+1:00 sees the whole hour: 4M + 59 × 10k.
    assert [(a["alertType"], a["timestamp"], a["currentVolume"]) for a in alerts] == [
        ("SPIKE", H + 5 * MIN, pytest.approx(4_040_000)),
        ("HALF_UPDATE", H + 30 * MIN, pytest.approx(4_290_000)),
        ("FULL_UPDATE", H + HOUR, pytest.approx(4_590_000)),
    ]
    for a in alerts:
        assert a["symbol"] == "BTCUSDT" and a["hourTimestamp"] == H and a["previousVolume"] == pytest.approx(1.2e6)
        assert a["candleDirection"] == "bullish"  # closes at 101 over the hour's open of 100
    assert alerts[0]["volumeRatio"] == pytest.approx(4_040_000 / 1_200_000)


@pytest.fixture
def hourly_file(tmp_path: Path) -> Path:
    """Two symbols, volume × close per hour: AAAUSDT 1M, 1M, 5M (closing down); BBBUSDT 1M, 2M, 2.5M."""
    text = (
        "symbol,open_time_ms,open,high,low,close,volume\n"
        f"AAAUSDT,{H},10,10,10,10,100000\n"
        f"AAAUSDT,{H + HOUR},10,10,10,10,100000\n"
        f"AAAUSDT,{H + 2 * HOUR},11,11,10,10,500000\n"
        f"BBBUSDT,{H},2,2,2,2,500000\n"
        f"BBBUSDT,{H + HOUR},2,2,2,2,1000000\n"
        f"BBBUSDT,{H + 2 * HOUR},2,3,2,2.5,1000000\n"
    )
    path = tmp_path / "perp_1h.csv"
    path.write_text(text)
    return path


def test_hourly_file_evaluates_each_hour_at_its_close(hourly_file: Path) -> None:
    result = run("--klines", str(hourly_file))
    assert result.exit_code == 0, result.output
    [spike] = lines(result.stdout)
    assert spike["symbol"] == "AAAUSDT" and spike["alertType"] == "SPIKE"
    assert spike["hourTimestamp"] == H + 2 * HOUR and spike["timestamp"] == H + 3 * HOUR
    assert spike["currentVolume"] == 5e6 and spike["previousVolume"] == 1e6 and spike["volumeRatio"] == 5.0
    assert spike["candleDirection"] == "bearish"  # closed at 10 under its open of 11


def test_thresholds_from_the_command_line_and_time_order(hourly_file: Path) -> None:
    result = run("--klines", str(hourly_file), "--ratio", "2", "--min-quote-volume", "1000000")
    assert result.exit_code == 0, result.output
    # BBB hour H+1: 2M ≥ 2 × 1M and ≥ $1M → SPIKE at H+2:00; AAA hour H+2 at H+3:00; BBB's 2.5M is only 1.25×.
    assert [(a["symbol"], a["timestamp"]) for a in lines(result.stdout)] == [
        ("BBBUSDT", H + 2 * HOUR), ("AAAUSDT", H + 3 * HOUR)]


def test_missing_file_exits_non_zero_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv.gz"
    result = run("--klines", str(missing))
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "no such file" in result.stderr
    assert result.stdout == ""


def test_malformed_file_exits_non_zero_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    header = "open_time_ms,open,high,low,close,volume\n"
    bad.write_text(f"{header}{H},1,1,1,1,1\n{H + MIN},1,1,1,1,1\n{H + 2 * MIN},1,x,1,1,1\n")
    result = run("--klines", str(bad))
    assert result.exit_code == 2
    assert f"{bad}, line 4" in result.stderr and "'x' is not a number" in result.stderr
