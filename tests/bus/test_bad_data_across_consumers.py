"""One malformed `market.candles` batch through every consumer of the topic: they all keep the same candles.

Before typed topics the recorder dropped the whole batch, the scanner kept the good candles and paper trading
skipped the minute. Now the bus decodes the batch once (topics.py) and each consumer receives the same cleaned
batch, on the in-process bus and on Redis alike.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from marketpulse.bus import EventBus, key_prefix, topics
from marketpulse.bus.memory import MemoryBus
from marketpulse.bus.redis_streams import RedisStreamsBus
from marketpulse.clock import FakeClock
from marketpulse.detection.scanner import SpikeScanner
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import MarketRecorder
from marketpulse.marketdata.tables import CandleRow
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.trading.paper.runner import PaperRunner
from support.redis_ns import REDIS_URL, new_deployment, unlink_namespace
from support.waiting import eventually

T0 = 1_760_126_400_000
MINUTE = 60_000


def candle(symbol: str, **fields: Any) -> dict[str, Any]:
    return {"symbol": symbol, "interval": "1m", "open_time": T0 - MINUTE, "open": 100.0, "high": 110.0, "low": 90.0,
            "close": 105.0, "volume": 1_000.0, "quote_volume": 100_000.0, "closed": True, **fields}


def malformed_batch() -> bytes:
    """Two good candles among six bad rows, as a foreign producer could write them (so: raw JSON)."""
    rows = [
        orjson.dumps(candle("BTCUSDT")),
        orjson.dumps({"symbol": "NOPEUSDT", "open_time": T0 - MINUTE}),  # fields missing
        orjson.dumps(candle("XRPUSDT", volume="1k")),  # a string for a number
        orjson.dumps(candle("ADAUSDT", interval="7m")),  # no such interval
        orjson.dumps(candle("DOGEUSDT", open_time=None)),
        orjson.dumps(candle("ETHUSDT")),
        b'"BNBUSDT"',  # not a candle at all
        orjson.dumps(candle("SOLUSDT")).replace(b'"volume":1000.0', b'"volume":1e999'),  # beyond float range
    ]
    return b'{"interval":"1m","candles":[' + b",".join(rows) + b"]}"


KEPT = [("BTCUSDT", T0 - MINUTE), ("ETHUSDT", T0 - MINUTE)]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def runtime(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path,
                  clock: FakeClock) -> AsyncIterator[Runtime]:
    db = tmp_path / "consumers.db"
    shutil.copy(sqlite_template, db)
    bus: EventBus = MemoryBus()
    deployment = new_deployment("bad-data")
    if request.param == "redis":
        bus = RedisStreamsBus(REDIS_URL, stream_prefix=key_prefix(deployment), block_ms=20)
    rt = Runtime.open(Settings(database_url=f"sqlite+aiosqlite:///{db}", bus_url="memory://", data_dir=tmp_path),
                      clock=clock, bus=bus)
    yield rt
    await rt.close()
    if request.param == "redis":  # this test's keys only: other tests and checkouts share the server
        await unlink_namespace(REDIS_URL, deployment)


def keys(candles: Sequence[Candle]) -> list[tuple[str, int]]:
    return sorted((c.symbol, c.open_time) for c in candles)


async def test_every_consumer_of_market_candles_keeps_the_same_rows_of_a_malformed_batch(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, scanner, runner = MarketRecorder(runtime), SpikeScanner(runtime), PaperRunner(runtime)
    seen_by_scanner: list[Candle] = []
    seen_by_paper: list[Candle] = []
    on_candle = scanner.detector.on_candle
    monkeypatch.setattr(scanner.detector, "on_candle", lambda c: (seen_by_scanner.append(c), on_candle(c)))
    paper_on_candles = runner.paper.on_candles

    async def paper_spy(candles: Sequence[Candle]) -> None:
        seen_by_paper.extend(candles)
        await paper_on_candles(candles)

    monkeypatch.setattr(runner.paper, "on_candles", paper_spy)
    rejected_before = REGISTRY.get_sample_value("bus_rejected_rows_total", {"topic": "market.candles"}) or 0.0
    for consumer in (recorder, scanner, runner):
        await consumer.start()
    try:
        await runtime.bus.publish(topics.MARKET_CANDLES, msgspec.Raw(malformed_batch()))

        async def stored() -> list[tuple[str, int]]:
            async with runtime.sessions() as session:
                return sorted((r.symbol, r.open_time) for r in await session.scalars(select(CandleRow)))

        async def everyone_handled_it() -> bool:
            return bool(seen_by_scanner) and bool(seen_by_paper) and bool(await stored())

        await eventually(everyone_handled_it)
        assert await stored() == KEPT  # the recorder
        assert keys(seen_by_scanner) == KEPT  # the spike scanner's detector
        assert keys(seen_by_paper) == KEPT  # paper trading (fills and marks)
        assert runner.market_clock.now_ms() == T0  # …whose market time moved to the kept minute's close
        # Six bad rows, counted once per consumer group that decoded the batch (three groups).
        counted = REGISTRY.get_sample_value("bus_rejected_rows_total", {"topic": "market.candles"}) or 0.0
        assert counted == rejected_before + 3 * 6
        assert await runtime.bus.dead_letters(topics.MARKET_CANDLES) == []
    finally:
        for consumer in (runner, scanner, recorder):
            await consumer.stop()
