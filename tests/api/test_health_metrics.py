"""Probes and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from marketpulse.bus import Message
from marketpulse.bus.memory import MemoryBus
from marketpulse.bus.redis_streams import RedisStreamsBus
from marketpulse.bus.topics import Topic
from marketpulse.marketdata.binance.source import BinanceSource
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.replay import _publish as publish_replay_events
from marketpulse.roles import run
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.storage.database import create_engine

from .serving import API_KEY, eventually, free_port

pytestmark = pytest.mark.usefixtures("signed_in")  # paper and backtests are a signed-in user's


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


LAG_TOPIC: Topic[dict[str, int]] = Topic("test.lag", dict)


def sample(text: str, name: str, **labels: str) -> float:
    """A metric's value in a /metrics page (0 when the labelled series isn't there yet)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def scrape(client: httpx.AsyncClient) -> str:
    r = await client.get("/metrics")
    assert r.status_code == 200
    return r.text


async def test_static_files_are_labelled_by_their_mount(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/dashboard.js")).status_code == 200
    assert (await client.get("/static/nothing-here.js")).status_code == 404
    text = await scrape(client)
    assert sample(text, "http_requests_total", route="/static/{path}", status="200") >= 1
    assert sample(text, "http_requests_total", route="/static/{path}", status="404") >= 1
    assert "dashboard.js" not in text and "nothing-here" not in text


async def test_memory_bus_lag_and_pending_per_group(client: httpx.AsyncClient, runtime: Runtime) -> None:
    release = asyncio.Event()

    async def slow(_: Message[dict[str, int]]) -> None:
        await release.wait()

    sub = await runtime.bus.subscribe(LAG_TOPIC, "slow-group", slow)
    for i in range(3):
        await runtime.bus.publish(LAG_TOPIC, {"i": i})
    text = await eventually_scraped(client, lambda t: sample(t, "marketpulse_bus_group_pending", group="slow-group")
                                    == 1)
    assert sample(text, "marketpulse_bus_group_lag", topic="test.lag", group="slow-group") == 2
    release.set()
    await eventually_scraped(client, lambda t: sample(t, "marketpulse_bus_group_lag", group="slow-group") == 0
                             and sample(t, "marketpulse_bus_group_pending", group="slow-group") == 0)
    await sub.close()


async def eventually_scraped(client: httpx.AsyncClient, ok: Callable[[str], bool]) -> str:
    async def attempt() -> str | None:
        text = await scrape(client)
        return text if ok(text) else None

    return await eventually(attempt)


async def test_redis_bus_lag_from_xinfo_groups(redis_url: str, redis_prefix: str) -> None:
    bus = RedisStreamsBus(redis_url, stream_prefix=redis_prefix)
    try:
        await bus.ensure_group(bus.stream_key("t"), "readers")
        for i in range(4):
            await bus.publish(Topic("t", dict), {"i": i})
        await bus.client.xreadgroup("readers", "c1", {bus.stream_key("t"): ">"}, count=1)  # taken, not acked
        await bus.client.xadd(bus.stream_key("dead-letter:t"), {"d": b"{}"})  # dead letters aren't a topic
        # Nor is a named deployment's stream, which sits under the unnamed one's prefix (`pulse:eu-prod:t`).
        await bus.ensure_group(bus.stream_key("eu-prod:t"), "theirs")
        lags = await bus.group_lags()
        assert [(g.topic, g.group, g.lag, g.pending) for g in lags] == [("t", "readers", 3, 1)]
    finally:
        await bus.close()


async def test_alerts_raised_count_only_new_alerts(client: httpx.AsyncClient) -> None:
    alert = {"symbol": "BTCUSDT", "currentVolume": 9e6, "previousVolume": 1e6, "volumeRatio": 9,
             "candleDirection": "bullish", "alertType": "SPIKE", "timestamp": 1_760_126_400_000}  # the clock's now
    before = sample(await scrape(client), "marketpulse_alerts_raised_total", type="SPIKE")
    for _ in range(2):  # the second is a duplicate: stored once, raised once
        r = await client.post("/api/v1/volume-alerts/ingest", json=alert, headers={"X-API-Key": API_KEY})
        assert r.status_code == 200, r.text
    assert sample(await scrape(client), "marketpulse_alerts_raised_total", type="SPIKE") == before + 1


async def test_paper_fills_are_counted(client: httpx.AsyncClient, runtime: Runtime) -> None:
    paper, t0 = runtime.services.paper, 1_760_126_400_000
    await paper.on_candles([Candle("ETHUSDT", "1m", t0 - 60_000, 4_000.0, 4_000.0, 4_000.0, 4_000.0, 1.0, 4_000.0)])
    before = sample(await scrape(client), "marketpulse_paper_fills_total", side="sell")
    r = await client.post("/api/v1/paper/orders", json={"symbol": "ETHUSDT", "side": "sell", "quantity": 1})
    assert r.status_code == 201, r.text
    await paper.on_candles([Candle("ETHUSDT", "1m", t0, 4_010.0, 4_010.0, 4_010.0, 4_010.0, 1.0, 4_010.0)])
    assert sample(await scrape(client), "marketpulse_paper_fills_total", side="sell") == before + 1


async def test_backtest_job_durations_are_observed(client: httpx.AsyncClient) -> None:
    before = sample(await scrape(client), "marketpulse_backtest_job_duration_seconds_count", status="failed")
    # No candles for this symbol anywhere: the job fails at once, which is a finished job all the same.
    r = await client.post("/api/v1/backtests", json={"strategy": "ema_cross", "symbol": "NOSUCHUSDT",
                                                     "from": "2025-10-08", "to": "2025-10-09"})
    assert r.status_code == 202, r.text
    await eventually_scraped(client, lambda t: sample(
        t, "marketpulse_backtest_job_duration_seconds_count", status="failed") == before + 1)


async def test_ingest_frames_are_counted_per_source() -> None:
    before = REGISTRY.get_sample_value("marketpulse_ingest_frames_total", {"source": "replay"}) or 0
    await publish_replay_events(MemoryBus(), [(LAG_TOPIC, {"time": 1})] * 3)
    assert REGISTRY.get_sample_value("marketpulse_ingest_frames_total", {"source": "replay"}) == before + 3

    before = REGISTRY.get_sample_value("marketpulse_ingest_frames_total", {"source": "binance"}) or 0
    source = BinanceSource(Settings())
    assert await source._on_message(MemoryBus(), b"not a frame") is False  # a rejected frame was still taken in
    assert REGISTRY.get_sample_value("marketpulse_ingest_frames_total", {"source": "binance"}) == before + 1


async def test_a_worker_serves_its_own_metrics_on_the_metrics_port(runtime: Runtime) -> None:
    port = free_port()
    runtime.settings = runtime.settings.model_copy(update={"metrics_port": port})
    stop = asyncio.Event()
    worker = asyncio.create_task(run(runtime, roles={"worker"}, stop=stop))

    async def scraped() -> str | None:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        except httpx.ConnectError:
            return None

    text = await eventually(scraped)
    assert "marketpulse_alerts_raised_total" in text and "marketpulse_paper_fills_total" in text
    stop.set()
    await worker
    with pytest.raises(httpx.ConnectError):  # stopped with the process's roles
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/metrics")
