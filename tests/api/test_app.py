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
    # where the page loads its first alerts: a hundred, so a spike arrives with its half- and full-hour updates
    assert "/api/v1/volume-alerts?limit=100" in page
    assert (await client.get("/static/dashboard.js")).status_code == 200


async def test_socket_io_client_is_served_from_node_modules(client: httpx.AsyncClient) -> None:
    r = await client.get("/vendor/socket.io.min.js")
    assert r.status_code == 200 and "Socket.IO" in r.text[:200]
    assert (await client.get("/vendor/other.js")).status_code == 404


async def raw_get(app: object, raw_path: bytes) -> tuple[int, bytes]:
    """One GET through the ASGI app with the path exactly as given: httpx would normalize `..` away client-side,
    and the request would never reach the server's routing at all."""
    sent: list[dict[str, object]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": raw_path.decode("latin-1"), "raw_path": raw_path, "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    status = next(int(m["status"]) for m in sent if m["type"] == "http.response.start")  # type: ignore[call-overload]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")  # type: ignore[misc]
    return status, body


@pytest.mark.parametrize("raw_path", [b"/vendor/../package.json", b"/vendor/..", b"/vendor/%2e%2e%2fpackage.json",
                                      b"/vendor/..%2Fpackage.json"])
async def test_vendor_files_cannot_be_escaped(runtime: Runtime, raw_path: bytes) -> None:
    app = create_app(runtime)
    async with lifespan(app):
        status, body = await raw_get(app, raw_path)
    assert status == 404
    assert b'"name"' not in body and b"marketpulse" not in body  # nothing of package.json leaks


async def test_missing_node_modules_answers_with_how_to_fix_it(runtime: Runtime, tmp_path: Path) -> None:
    runtime.settings = runtime.settings.model_copy(update={"node_modules_dir": tmp_path / "nowhere"})
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
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
