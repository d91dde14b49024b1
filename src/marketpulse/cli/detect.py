"""`pulse detect …`: run detectors offline over files."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Run detectors offline over candle files.")
