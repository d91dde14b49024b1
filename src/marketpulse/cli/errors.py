"""The CLI's one way to refuse input: a line on stderr, exit code 2 (the code Click uses for bad usage).

Every `pulse` command reports bad input through `fail`, so a script can tell "you asked for something wrong" (2)
from success (0) without reading the message. Options and times go through the same parsers as the API
(`Interval.parse`, `parse_time_ms`), so the CLI accepts and refuses exactly what the API does.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from marketpulse.marketdata.intervals import Interval
from marketpulse.times import parse_time_ms

BAD_INPUT_EXIT = 2


def fail(message: str, *, file: str | Path | None = None, line: int | None = None) -> NoReturn:
    """Print `error: [FILE[, line N]: ]MESSAGE` on stderr and exit with BAD_INPUT_EXIT."""
    where = "" if file is None else f"{file}, line {line}: " if line else f"{file}: "
    typer.echo(f"error: {where}{message}", err=True)
    raise typer.Exit(BAD_INPUT_EXIT)


def option_interval(value: str, option: str) -> Interval:
    """An interval option's value, or `fail` naming the option."""
    try:
        return Interval.parse(value)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def option_time(value: str, option: str) -> int:
    """A time option's value as epoch ms, or `fail` naming the option."""
    try:
        return parse_time_ms(value)
    except ValueError as exc:
        fail(f"{option}: {exc}")
