"""The worker follows the market's time from the bus: a replay running years behind the wall clock still fills
orders on its next candle and ends `day` orders at the *market's* UTC midnight."""

from __future__ import annotations

import msgspec

from marketpulse.bus import topics
from marketpulse.clock import FakeClock
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.orders import OrderSpec, OrderType, Side, TimeInForce
from marketpulse.trading.paper.runner import PaperRunner
from marketpulse.trading.risk import next_utc_midnight_ms
from support.topics import message

from .helpers import MINUTE, T0, candle

WALL = T0 + 400 * 86_400_000  # the wall clock, over a year after the replayed market


async def deliver(runner: PaperRunner, *candles: object) -> None:
    payload = {"interval": "1m", "candles": [msgspec.to_builtins(c) for c in candles]}
    await runner.on_candles_message(message(topics.MARKET_CANDLES, payload))


async def test_replayed_market_time_drives_fills_and_days(runtime: Runtime, clock: FakeClock) -> None:
    clock.set(WALL)
    runner = PaperRunner(runtime)  # the views share runner.paper (one service per runtime)
    await deliver(runner, candle("BTCUSDT", T0, 100.0))
    assert runner.paper.clock.now_ms() == T0 + MINUTE

    order = await runner.paper.place_order("default", OrderSpec("BTCUSDT", Side.BUY, OrderType.MARKET, 1.0))
    day = await runner.paper.place_order("default", OrderSpec(
        "BTCUSDT", Side.BUY, OrderType.LIMIT, 1.0, limit_price=50.0, time_in_force=TimeInForce.DAY))
    assert day.expires_at_ms == next_utc_midnight_ms(T0)
    await deliver(runner, candle("BTCUSDT", T0 + MINUTE, 101.0))
    assert (await runner.paper.order("default", order.id)).fill_price == 101.0

    midnight = next_utc_midnight_ms(T0)
    await deliver(runner, candle("BTCUSDT", midnight, 102.0))
    assert (await runner.paper.order("default", day.id)).status == "expired"
