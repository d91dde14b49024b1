"""`pulse tax …`: tax reports offline from a generic transactions CSV (see `marketpulse.tax.csv_formats`).

`pulse tax report --transactions FILE --year YEAR --method fifo|lifo|hifo|lofo [--per-wallet]` prints the year's
Form 8949 lines as CSV on stdout. A bad row exits with code 2 naming the file, line and field.

`pulse tax import FILE --email USER [--account NAME]` stores a CSV (generic, Binance, Coinbase or Kraken: found from
its header) as that user's transactions, as the API's import does: missing prices from the market-data library,
duplicates skipped. It prints the counts; each rejected row is a `FILE, line N: field: reason` line on stderr and
makes the exit code 1 (the other rows are stored); an unreadable file or unknown user exits 2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from marketpulse.cli.errors import fail
from marketpulse.tax.core import Method, year_bounds_ms
from marketpulse.tax.csv_formats import RowError, form_8949_csv, in_year, read_generic
from marketpulse.tax.lots import compute

if TYPE_CHECKING:
    from marketpulse.tax.service import ImportSummary

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


@app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(help="The CSV: generic, or a Binance, Coinbase or Kraken export")],
    email: Annotated[str, typer.Option("--email", help="Whose transactions these are (an existing user)")],
    account: Annotated[str | None, typer.Option("--account", help="Account name for an exchange export's rows "
                                                "(default: the exchange)")] = None,
) -> None:
    """Import a transactions file for a user; importing the same file twice changes nothing."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read: {exc}", file=path)
    summary = asyncio.run(_import(path, text, email.strip(), account))
    typer.echo(f"{path}: {summary.layout} layout, {summary.rows_read} rows read, {summary.imported} transactions "
               f"imported, {summary.duplicates} duplicates skipped, {len(summary.ignored)} rows ignored, "
               f"{len(summary.rejected)} rejected")
    for row in summary.ignored:
        typer.echo(f"{path}, line {row.line}: ignored: {row.reason}")
    for bad in summary.rejected:
        typer.echo(f"error: {path}, line {bad.line}: {bad.field}: {bad.reason}", err=True)
    if summary.rejected:
        raise typer.Exit(1)


async def _import(path: Path, text: str, email: str, account: str | None) -> ImportSummary:
    from marketpulse.clock import SystemClock
    from marketpulse.settings import get_settings
    from marketpulse.storage.database import create_engine, session_factory
    from marketpulse.storage.migrate import upgrade
    from marketpulse.tax.prices import LibraryPrices
    from marketpulse.tax.service import TaxService

    settings = get_settings()
    upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        owner = await _user_id(sessions, email)
        if owner is None:
            fail(f"--email: no user {email!r}")
        tax = TaxService(sessions, SystemClock(), LibraryPrices(settings.data_dir / "library"))
        try:
            return await tax.import_file(owner, text, account)
        except RowError as exc:
            fail(f"{exc.field}: {exc.message}", file=path, line=exc.line)
    finally:
        await engine.dispose()


async def _user_id(sessions: Any, email: str) -> str | None:
    from sqlalchemy import select

    from marketpulse.accounts.core import email_key
    from marketpulse.accounts.tables import UserRow

    async with sessions() as s:
        row = (await s.execute(select(UserRow.id).where(UserRow.email_key == email_key(email)))).scalar()
    return None if row is None else str(row)
