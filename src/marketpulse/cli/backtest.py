"""`pulse backtest …`: run and sweep strategies over candles."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Backtests and parameter sweeps.")
