"""structlog configuration: console output for people, JSON for machines (PULSE_LOG_JSON=1).

Colour codes only go to a terminal: a log written to a file or a pipe (systemd, `> demo.log`, a container runtime)
is plain text a person can grep. Alembic's INFO chatter (plugin set-up, "Context impl SQLiteImpl", "Will assume
non-transactional DDL") is held back; the one line per migration it runs ("Running upgrade 0002 -> 0003") stays.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from marketpulse.settings import Settings


class _MigrationsRun(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.getMessage().startswith("Running ")


_MIGRATIONS_RUN = _MigrationsRun()


def _quiet_alembic(level: int) -> None:
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    migration = logging.getLogger("alembic.runtime.migration")
    migration.setLevel(level)
    if _MIGRATIONS_RUN not in migration.filters:
        migration.addFilter(_MIGRATIONS_RUN)


def wants_colour(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")
    _quiet_alembic(level)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=wants_colour(stream))
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
    )
