"""Async engine and sessions over SQLite (aiosqlite) or PostgreSQL (asyncpg); one code path for both."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, MetaData, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from marketpulse.storage.guards import install_sqlite_guards

# Stable constraint names so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str) -> AsyncEngine:
    if is_sqlite(url):
        _ensure_sqlite_dir(url)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        install_sqlite_guards(engine)  # refuse what PostgreSQL refuses: NUL, over-long strings, > BIGINT
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


Row = TypeVar("Row")


async def page(sessions: async_sessionmaker[AsyncSession], model: type[Row], where: Sequence[ColumnElement[bool]],
               order_by: Sequence[Any], *, limit: int, offset: int) -> tuple[list[Row], int]:
    """One page of `model` rows matching `where`, and how many match in all (the admin lists' paging)."""
    async with sessions() as s:
        total = (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()
        rows = await s.execute(select(model).where(*where).order_by(*order_by).limit(limit).offset(offset))
        return list(rows.scalars()), int(total)


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the API read while the worker writes; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
