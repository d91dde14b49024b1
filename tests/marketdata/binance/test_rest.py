"""The Binance REST client against the local fake: rate-limit gate, used-weight pause, API errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fakes.binance_server import FakeBinance, minute_klines
from marketpulse.clock import FakeClock
from marketpulse.marketdata.binance.rest import BinanceApiError, BinanceRest

T0 = 1_760_126_400_000


class RecordingSleep:
    def __init__(self, clock: FakeClock) -> None:
        self.delays: list[float] = []
        self._clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self._clock.advance(int(seconds * 1000))
        await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        server.add_symbol("BTCUSDT")
        server.klines["BTCUSDT"] = minute_klines(T0 - 5 * 60_000, [100.0, 101.0, 102.0, 103.0, 104.0, 105.0])
        yield server


@pytest.fixture
async def client(fake: FakeBinance) -> AsyncIterator[tuple[BinanceRest, RecordingSleep, FakeClock]]:
    clock = FakeClock(T0 + 30_000)
    sleep = RecordingSleep(clock)
    rest = BinanceRest(fake.rest_url, clock, sleep=sleep)
    yield rest, sleep, clock
    await rest.aclose()


async def test_klines_limit_returns_the_latest_rows(client: tuple[BinanceRest, RecordingSleep, FakeClock]) -> None:
    rest, sleep, _ = client
    candles = await rest.klines("BTCUSDT", limit=2)
    assert [(c.open_time, c.close) for c in candles] == [(T0 - 60_000, 104.0), (T0, 105.0)]
    assert sleep.delays == []


async def test_a_nearly_spent_minute_weight_pauses_until_the_next_minute(
    fake: FakeBinance, client: tuple[BinanceRest, RecordingSleep, FakeClock]
) -> None:
    rest, sleep, _ = client
    fake.used_weight = 2_250
    await rest.active_symbols()
    fake.used_weight = 3
    await rest.active_symbols()
    assert sleep.delays == [30.0]  # from :30 to the next minute, before any 429


async def test_retry_after_is_waited_once_for_all_requests(
    fake: FakeBinance, client: tuple[BinanceRest, RecordingSleep, FakeClock]
) -> None:
    rest, sleep, _ = client
    fake.rate_limit_next(1, retry_after_s=12)
    assert (await rest.active_symbols()).symbols == ["BTCUSDT"]
    await rest.klines("BTCUSDT")  # the gate has passed: no second wait
    assert sleep.delays == [12.0]


async def test_client_errors_raise_with_binances_message(client: tuple[BinanceRest, RecordingSleep, FakeClock]) -> None:
    rest, _, _ = client
    with pytest.raises(BinanceApiError, match="Invalid symbol") as excinfo:
        await rest.klines("NOPEUSDT")
    assert excinfo.value.status == 400


async def test_gives_up_after_repeated_rate_limits(
    fake: FakeBinance, client: tuple[BinanceRest, RecordingSleep, FakeClock]
) -> None:
    rest, sleep, _ = client
    fake.rate_limit_next(5, retry_after_s=1)
    with pytest.raises(BinanceApiError, match="still rate limited"):
        await rest.active_symbols()
    assert sleep.delays == [1.0] * 4
