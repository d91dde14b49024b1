"""Migrations 0002/0003 create exactly what the paper-trading and backtest-job tables declare (both engines)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from marketpulse.runtime import Runtime
from marketpulse.storage.models import metadata

MINE = {"backtest_jobs", "paper_accounts", "paper_positions", "paper_orders", "paper_fills", "paper_deployments"}


def _table_of(diff: Any) -> str | None:
    op = diff[0] if isinstance(diff, list) else diff
    for item in op[1:]:
        name = getattr(item, "name", None) if not isinstance(item, str) else None
        table = getattr(item, "table", None)
        if table is not None:
            return str(table.name)
        if name in MINE:
            return str(name)
        if isinstance(item, str) and item in MINE:
            return item
    return None


async def test_my_tables_match_their_migrations(runtime: Runtime) -> None:
    def compare(conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, metadata) if _table_of(d) in MINE]

    async with runtime.engine.connect() as conn:
        diffs = await conn.run_sync(compare)
    assert diffs == []
