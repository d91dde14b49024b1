"""Shared fixtures: a migrated database on SQLite *and* PostgreSQL, Redis, a fake clock, a Runtime.

`db_url` is parametrized, so every test that uses it runs on both engines. PostgreSQL gets one database
per test session (migrated once, truncated between tests); SQLite gets a copy of a migrated template file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from marketpulse.bus import key_prefix
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.storage.database import create_engine
from marketpulse.storage.migrate import upgrade
from marketpulse.storage.models import metadata
from support.redis_ns import REDIS_URL, new_deployment, unlink_namespace

PG_ADMIN_DSN = os.environ.get("PULSE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pg_database_url(name: str, driver: str = "postgresql+asyncpg") -> str:
    """The URL of database `name` on the server `PULSE_TEST_PG_DSN` points at (host, port, user from it)."""
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN_DSN).set(drivername=driver, database=name).render_as_string(hide_password=False)


def _pg(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # Session fixtures may be first requested from inside an async test: keep off its loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"mp_test_{uuid.uuid4().hex[:10]}"
    _pg(f'CREATE DATABASE "{name}"')
    url = pg_database_url(name)
    upgrade(url)
    yield url
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_pg_database() -> Iterator[str]:
    """A database of its own, not migrated (for tests of the migrations themselves); dropped afterwards."""
    name = f"mp_empty_{uuid.uuid4().hex[:10]}"
    _pg(f'CREATE DATABASE "{name}"')
    yield pg_database_url(name)
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    await _truncate_all(url)
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=1_760_126_400_000)  # 2025-10-10 20:00 UTC


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key="test-key")


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime.open(settings, clock=clock, bus=MemoryBus())
    yield rt
    await rt.close()


@pytest.fixture
def redis_deployment() -> str:
    """This test's deployment name: its Redis keys (`redis_prefix`) and Socket.IO channel are its own."""
    return new_deployment()


@pytest.fixture
def redis_prefix(redis_deployment: str) -> str:
    """Where this test's Redis keys go; give it to a hand-built bus or lease store (`stream_prefix=`, `prefix=`)."""
    return key_prefix(redis_deployment)


@pytest.fixture
async def redis_url(redis_deployment: str) -> AsyncIterator[str]:
    """The shared test Redis server (PULSE_TEST_REDIS_URL); afterwards only this test's keys are deleted."""
    yield REDIS_URL
    await unlink_namespace(REDIS_URL, redis_deployment)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the clone; tests that need the full files skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this clone")
    return SHARED_DATA
