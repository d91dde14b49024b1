"""`pulse`: the root command. Sub-groups live beside this file, one module each."""

from __future__ import annotations

import typer

from marketpulse.cli import admin, backtest, data, db, detect, serve, tax

app = typer.Typer(no_args_is_help=True, help="marketpulse: market intelligence, alerting and trading.")
app.add_typer(db.app, name="db")
app.add_typer(detect.app, name="detect")
app.add_typer(data.app, name="data")
app.add_typer(backtest.app, name="backtest")
app.add_typer(admin.app, name="admin")
app.add_typer(tax.app, name="tax")
serve.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
