"""SQLite refuses what PostgreSQL refuses, so a value is stored on both engines or on neither.

PostgreSQL rejects a NUL character in any text parameter, a string longer than its column's VARCHAR(n), and an
integer beyond BIGINT; SQLite stores the first two as given (and fails on the third with a bare OverflowError).
Installed on every SQLite engine, this check raises the same `sqlalchemy.exc.DataError` PostgreSQL's refusal
becomes, before the statement runs; the HTTP layer answers both with a 422.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import String, event
from sqlalchemy.engine import Connection, ExecutionContext
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncEngine

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
_MULTI_ROW_SUFFIX = re.compile(r"_m\d+$")  # `insert().values([...])` names row n's binds `<column>_m<n>`


class ValueNotStorable(ValueError):
    """The reason PostgreSQL would give; wrapped in DataError like a driver's error."""


def install_sqlite_guards(engine: AsyncEngine) -> None:
    event.listen(engine.sync_engine, "before_cursor_execute", _check_parameters)


def _check_parameters(
    _conn: Connection, _cursor: Any, statement: str, parameters: Any, context: ExecutionContext | None,
    _executemany: bool,
) -> None:
    compiled = getattr(context, "compiled", None)
    rows: Iterable[Any] = getattr(context, "compiled_parameters", None) or [parameters]
    lengths = _written_lengths(compiled, context)
    for row in rows:
        items = row.items() if isinstance(row, Mapping) else enumerate(row or ())
        for name, value in items:
            reason = _refusal(value, lengths.get(_MULTI_ROW_SUFFIX.sub("", str(name))))
            if reason:
                raise DataError(statement, None, ValueNotStorable(f"{reason} (column or parameter {name})"))


def _written_lengths(compiled: Any, context: ExecutionContext | None) -> dict[str, int]:
    """VARCHAR lengths of the columns an INSERT or UPDATE writes, by bind name (a WHERE bind compares, PostgreSQL
    doesn't refuse a long string there)."""
    if compiled is None or not (getattr(context, "isinsert", False) or getattr(context, "isupdate", False)):
        return {}
    table = getattr(compiled.statement, "table", None)
    columns = getattr(table, "c", ())
    return {c.key: c.type.length for c in columns if isinstance(c.type, String) and c.type.length}


def _refusal(value: Any, max_length: int | None) -> str | None:
    if isinstance(value, str):
        if "\x00" in value:
            return "invalid byte sequence for encoding \"UTF8\": 0x00"
        if max_length is not None and len(value) > max_length:
            return f"value too long for type character varying({max_length})"
    elif isinstance(value, int) and not isinstance(value, bool) and not BIGINT_MIN <= value <= BIGINT_MAX:
        return "value out of int64 range"
    return None
