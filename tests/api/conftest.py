"""The app under test: `create_app(runtime)` with its lifespan run, reached through httpx or a real uvicorn."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketpulse.api.app import create_app
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from support.accounts import authorize

from .serving import API_KEY, lifespan


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # Small body limit so 413 is cheap to provoke; no debounce wait in tests.
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key=API_KEY,
                    max_body_bytes=4096, market_debounce_ms=0)


@pytest.fixture
async def app(runtime: Runtime) -> AsyncIterator[Any]:
    application = create_app(runtime)
    async with lifespan(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
        yield c


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """`client` signed in as a pro user (Bearer), for tests of per-user routes (paper, backtests):
    `pytestmark = pytest.mark.usefixtures("signed_in")`."""
    await authorize(client, runtime)


@pytest.fixture
async def anonymous(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A caller with no credentials at all."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
        yield c


@pytest.fixture
async def sqlite_runtime(sqlite_template: Path, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A Runtime on SQLite only, for realtime tests where the database engine is beside the point."""
    db = tmp_path / "rt.db"
    shutil.copy(sqlite_template, db)
    rt = Runtime.open(Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", ingest_api_key=API_KEY,
                               market_debounce_ms=0), clock=clock, bus=MemoryBus())
    yield rt
    await rt.close()
