"""The `pulse` command line (Typer). One module per command group; heavy imports stay inside commands."""
