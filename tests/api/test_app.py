"""The app factory: dashboard page, vendored front-end files, OpenAPI, and which Socket.IO manager it picks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import socketio

from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.realtime.server import create_socket_server, fanout_redis_url
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings

from .serving import eventually, lifespan


async def test_dashboard_page_carries_the_current_table(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": 1, "rows": [
        {"symbol": "BTCUSDT", "time": 1, "price": 60_000.0, "change_pct_24h": 1.0, "quote_volume_24h": 1e9}]})

    async def rendered() -> str | None:
        page = (await client.get("/")).text
        return page if "BTCUSDT" in page else None

    page = await eventually(rendered)
    assert '<script src="/vendor/socket.io.min.js"></script>' in page
    assert "/api/v1/volume-alerts?limit=50" in page  # where the page loads its first alerts
    assert (await client.get("/static/dashboard.js")).status_code == 200


async def test_socket_io_client_is_served_from_node_modules(client: httpx.AsyncClient) -> None:
    r = await client.get("/vendor/socket.io.min.js")
    assert r.status_code == 200 and "Socket.IO" in r.text[:200]
    assert (await client.get("/vendor/../package.json")).status_code == 404
    assert (await client.get("/vendor/other.js")).status_code == 404


async def test_missing_node_modules_answers_with_how_to_fix_it(runtime: Runtime, tmp_path: Path) -> None:
    runtime.settings = runtime.settings.model_copy(update={"node_modules_dir": tmp_path / "nowhere"})
    app = create_app(runtime)
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/vendor/socket.io.min.js")
        assert r.status_code == 503 and "npm ci" in r.json()["detail"]
        assert (await c.get("/health/ready")).status_code == 200  # the API itself is unaffected


async def test_openapi_documents_the_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/market/data", "/api/v1/market/symbol/{symbol}", "/api/v1/market/history/{symbol}",
                 "/api/v1/market/open-interest", "/api/v1/market/open-interest/ingest", "/health/ready"):
        assert path in paths
    ingest = paths["/api/v1/market/open-interest/ingest"]["post"]
    assert "data" in ingest["requestBody"]["content"]["application/json"]["schema"]["properties"]


@pytest.mark.parametrize(
    ("bus_url", "redis_url", "expected"),
    [
        ("memory://", None, None),
        ("redis://bus:6379/0", None, "redis://bus:6379/0"),
        ("redis://bus:6379/0", "redis://fanout:6379/1", "redis://fanout:6379/1"),
        ("memory://", "redis://fanout:6379/1", "redis://fanout:6379/1"),
    ],
)
def test_redis_fanout_follows_the_settings(bus_url: str, redis_url: str | None, expected: str | None) -> None:
    settings = Settings(bus_url=bus_url, redis_url=redis_url)
    assert fanout_redis_url(settings) == expected
    manager = create_socket_server(settings).manager
    assert isinstance(manager, socketio.AsyncRedisManager) is (expected is not None)
