"""`pulse tax report`: the year's Form 8949 CSV on stdout; a bad row exits 2 naming file, line and field."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from marketpulse.cli.main import app

ROWS = """timestamp,type,asset,amount,price_usd,fee_usd,account,tx_id
2023-01-10T00:00:00Z,buy,BTC,1,20000,10,cb,a1
2023-06-01,buy,BTC,1,30000,0,kr,a2
2024-01-10,sell,BTC,1.5,40000,15,kr,s1
2025-01-01,sell,BTC,0.5,50000,0,kr,s2
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_report_prints_the_years_form_8949_for_each_method(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(ROWS)
    # 2024 sale of 1.5 at 40,000 − 15 = 59,985 (39,990 per BTC). Pooled FIFO: lot a1 (20,010; 2023-01-10 → 2024-01-10
    # is the same calendar day: short) then half of a2 (15,000). LIFO: a2 whole (30,000) then half of a1 (10,005).
    code, out, _ = run("tax", "report", "--transactions", str(path), "--year", "2024", "--method", "fifo")
    assert code == 0
    assert out.splitlines()[1:] == [
        "1 BTC,2023-01-10,2024-01-10,39990.00,20010.00,19980.00,short,kr",
        "0.5 BTC,2023-06-01,2024-01-10,19995.00,15000.00,4995.00,short,kr",
    ]
    code, out, _ = run("tax", "report", "--transactions", str(path), "--year", "2024", "--method", "lifo")
    assert out.splitlines()[1:] == [
        "1 BTC,2023-06-01,2024-01-10,39990.00,30000.00,9990.00,short,kr",
        "0.5 BTC,2023-01-10,2024-01-10,19995.00,10005.00,9990.00,short,kr",
    ]
    # Per wallet, kr sells what kr holds: 1 BTC of a2, then 0.5 with no basis (cb's lot stays at cb).
    code, out, _ = run("tax", "report", "--transactions", str(path), "--year", "2024", "--per-wallet")
    assert out.splitlines()[1:] == [
        "1 BTC,2023-06-01,2024-01-10,39990.00,30000.00,9990.00,short,kr",
        "0.5 BTC (no basis),UNKNOWN,2024-01-10,19995.00,0.00,19995.00,short,kr",
    ]


def test_a_bad_row_exits_2_naming_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(ROWS + "2024-05-01,sell,BTC,1,,0,kr,s3\n")
    code, out, err = run("tax", "report", "--transactions", str(path), "--year", "2024", "--method", "hifo")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}, line 6: price_usd:")


def test_a_bad_method_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(ROWS)
    code, _, err = run("tax", "report", "--transactions", str(path), "--year", "2024", "--method", "avg")
    assert code == 2 and "--method" in err
