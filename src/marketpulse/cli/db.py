"""`pulse db …`: schema migrations."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision")) -> None:
    """Migrate the database at PULSE_DATABASE_URL to REVISION (default: the newest)."""
    from marketpulse.settings import get_settings
    from marketpulse.storage.migrate import upgrade as run_upgrade

    run_upgrade(get_settings().database_url, revision)
    typer.echo(f"database at revision {revision}")
