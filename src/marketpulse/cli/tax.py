"""`pulse tax …`: tax reports offline from a generic transactions CSV (see `marketpulse.tax.csv_formats`).

`pulse tax report --transactions FILE --year YEAR --method fifo|lifo|hifo|lofo [--per-wallet]` prints the year's
Form 8949 lines as CSV on stdout. A bad row exits with code 2 naming the file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marketpulse.cli.errors import fail
from marketpulse.tax.core import Method, year_bounds_ms
from marketpulse.tax.csv_formats import RowError, form_8949_csv, in_year, read_generic
from marketpulse.tax.lots import compute

app = typer.Typer(no_args_is_help=True, help="Tax reports (lots, disposals, Form 8949) from transaction files.")


@app.command("report")
def report(
    transactions: Annotated[Path, typer.Option("--transactions", help="Generic transactions CSV")],
    year: Annotated[int, typer.Option("--year", help="Tax year (UTC)")],
    method: Annotated[str, typer.Option("--method", help="fifo, lifo, hifo or lofo")] = "fifo",
    per_wallet: Annotated[bool, typer.Option("--per-wallet", help="Lots per account, not pooled")] = False,
) -> None:
    """Print the year's Form 8949 CSV (description, date_acquired, date_sold, proceeds, cost_basis, gain_loss, term,
    account), short-term lines first."""
    try:
        chosen = Method(method.lower())
    except ValueError:
        fail(f"--method: {method!r} is not one of fifo, lifo, hifo, lofo")
    if not 2000 <= year < 2100:
        fail(f"--year: {year} is outside 2000 … 2099")
    try:
        text = transactions.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read: {exc}", file=transactions)
    try:
        rows = [parsed.tx for parsed in read_generic(text)]
    except RowError as exc:
        fail(f"{exc.field}: {exc.message}", file=transactions, line=exc.line)
    result = compute(rows, chosen, per_wallet)
    start, end = year_bounds_ms(year)
    typer.echo(form_8949_csv(in_year(result.disposals, start, end)), nl=False)
