"""The CLI's one refusal: every `pulse` command reports bad input as one `error:` line on stderr and exit code 2,
naming the option, or the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketpulse.cli.main import app

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MINUTE = 60_000


def pulse(*args: str) -> tuple[int, str]:
    """Exit code and the one `error:` line (progress bars may have drawn on stderr before it)."""
    result = CliRunner().invoke(app, list(args))
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == (result.exit_code != 0), result.output
    return result.exit_code, errors[0] if errors else ""


@pytest.fixture
def seven_minute_file(tmp_path: Path) -> Path:
    """Candles 7 minutes apart: readable, but 7m is no interval (Binance has none; neither do we)."""
    path = tmp_path / "seven.csv"
    rows = [f"TESTUSDT,{T0 + i * 7 * MINUTE},1,2,0.5,1.5,10" for i in range(20)]
    path.write_text("symbol,open_time_ms,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def bad_line_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(f"symbol,open_time_ms,open,high,low,close,volume\nTESTUSDT,{T0},1,2,0.5,1.5,10\n"
                    f"TESTUSDT,{T0 + MINUTE},1,2,0.5,oops,10\n")
    return path


def test_an_unknown_interval_in_a_file_is_refused_alike_by_every_command(
    seven_minute_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULSE_DATA_DIR", str(tmp_path / "var"))
    for args in (["detect", "spikes", "--klines", str(seven_minute_file)],
                 ["data", "import", str(seven_minute_file)],
                 ["backtest", "run", "-s", "ema_cross", "--data", str(seven_minute_file), "--interval", "1h"]):
        code, out = pulse(*args)
        assert code == 2, (args, out)
        assert out.startswith(f"error: {seven_minute_file}: ") and "unknown interval '7m' (use one of 1m," in out


def test_a_malformed_line_is_named_alike_by_every_command(
    bad_line_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULSE_DATA_DIR", str(tmp_path / "var"))
    for args in (["detect", "spikes", "--klines", str(bad_line_file)],
                 ["data", "import", str(bad_line_file), "--interval", "1m"],
                 ["backtest", "run", "-s", "ema_cross", "--data", str(bad_line_file)]):
        code, out = pulse(*args)
        assert (code, out) == (2, f"error: {bad_line_file}, line 3: column close: 'oops' is not a number"), args


@pytest.mark.parametrize(("args", "option"), [
    (["data", "download", "--symbol", "BTC/USDT", "--interval", "2w", "--since", "2024-01-01"], "--interval"),
    (["data", "download", "--symbol", "BTC/USDT", "--interval", "1h", "--since", "1704067200"], "--since"),
    (["data", "resample", "--symbol", "BTCUSDT", "--from", "1m", "--to", "7m"], "--to"),
    (["backtest", "run", "-s", "ema_cross", "--symbol", "BTCUSDT", "--interval", "1H"], "--interval"),
    (["backtest", "sweep", "-s", "ema_cross", "--symbol", "BTCUSDT", "--interval", "1h", "--to", "2024-02-30"],
     "--to"),
])
def test_bad_options_exit_2_naming_the_option(args: list[str], option: str) -> None:
    code, out = pulse(*args)
    assert code == 2 and out.startswith(f"error: {option}: "), out
