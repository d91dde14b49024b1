"""`pulse demo|api|worker|ingest`: the long-running processes."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
