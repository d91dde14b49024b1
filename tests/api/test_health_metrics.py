"""Probes and Prometheus metrics."""

from __future__ import annotations

import httpx
import pytest

from marketpulse.runtime import Runtime
from marketpulse.storage.database import create_engine


async def test_live_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    r = await client.get("/health/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "bus": "ok"}}


async def test_ready_is_503_naming_the_bus_when_its_ping_fails(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down() -> bool:
        return False

    monkeypatch.setattr(runtime.bus, "ping", down)
    r = await client.get("/health/ready")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"database": "ok", "bus": "failed"}}


async def test_ready_is_503_naming_the_database_without_leaking_its_url(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = create_engine("postgresql+asyncpg://probe:s3cret-pw@127.0.0.1:1/nothing")
    monkeypatch.setattr(runtime, "engine", unreachable)
    r = await client.get("/health/ready")
    await unreachable.dispose()
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["bus"] == "ok" and checks["database"].startswith("error")
    assert "s3cret-pw" not in r.text


async def test_metrics_label_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/market/symbol/NOPEUSDT")
    await client.get("/no/such/page-12345")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/api/v1/market/symbol/{symbol}",status="404"}' in text
    assert 'http_requests_total{method="GET",route="<unmatched>",status="404"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert "NOPEUSDT" not in text and "page-12345" not in text  # raw paths would be unbounded labels
    assert "realtime_connected_clients" in text
