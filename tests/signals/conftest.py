"""Signals under test: the whole app (its lifespan run) on the runtime, an administrator and users made as
`pulse admin create-user` makes them, destinations written as the delivery capability stores verified ones."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.serving import API_KEY, lifespan  # noqa: I001 (tests/api helpers)
from marketpulse.accounts.core import Role
from marketpulse.api.app import create_app
from marketpulse.delivery.tables import DestinationRow
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

PASSWORD = "Correct-Horse-9-battery"
CONFIGS = "/api/v1/admin/signal-configs"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, bus_url="memory://", data_dir=tmp_path / "var", ingest_api_key=API_KEY,
                    jwt_secret_key="test-jwt-secret-of-at-least-32-bytes!", market_debounce_ms=0,
                    public_url="https://signals.example.com")


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime)
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                base_url="http://localhost") as c:
        yield c


async def user(client: httpx.AsyncClient, runtime: Runtime, email: str, plan: str = "pro",
               role: Role = Role.USER) -> tuple[str, dict[str, str]]:
    """A verified user: (id, the Authorization header of a fresh sign-in)."""
    row = await runtime.services.accounts.create_user(email, PASSWORD, plan=plan, verified=True, role=role)
    resp = await client.post("/api/v1/auth/signin", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    client.cookies.clear()
    return row.id, {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def admin(client: httpx.AsyncClient, runtime: Runtime) -> dict[str, str]:
    return (await user(client, runtime, "root@example.com", role=Role.ADMIN))[1]


async def destination(runtime: Runtime, owner_id: str, channel: str = "email") -> str:
    did = str(uuid.uuid4())
    async with runtime.sessions() as s:
        s.add(DestinationRow(id=did, owner_id=owner_id, channel=channel, address="someone@example.com",
                             state="verified", code_attempts=0, created_at_ms=0))
        await s.commit()
    return did


async def config(client: httpx.AsyncClient, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"symbol": "BINANCE:BTCUSDT.P", "timeframe": "60", "key_value": 2, "atr_period": 10} | fields
    resp = await client.post(CONFIGS, json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made
