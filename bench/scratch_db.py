"""A throw-away PostgreSQL database per benchmark run, so runs on one server never meet (and leave nothing)."""

from __future__ import annotations

import uuid


async def pg_database(dsn: str) -> tuple[str, str]:
    """Create a fresh database on the server of `dsn`; returns its SQLAlchemy asyncpg URL and its name."""
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"mp_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return make_url(dsn).set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False), name


async def drop_pg(dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()
