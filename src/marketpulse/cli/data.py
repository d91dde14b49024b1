"""`pulse data …`: the Parquet market-data library (import, download, list, resample)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="The market-data library (Parquet candles).")
