"""The paper-trading worker: closed candles and tickers from the bus into the paper service and deployments.

`roles.start_worker` starts one per worker process. Its clock is the market's (`EventClock`: the newest candle
close or ticker time seen), so a replay's orders, UTC days and daily-loss days are the replayed market's.
Each candle batch first fills resting manual orders and marks accounts, then steps every deployment (whose
signals become orders for the *next* minute's open), so a decision can never fill on the candle it was decided
on. Deployments created or stopped through the API (in this or another process) are picked up from the store
before each batch.
"""

from __future__ import annotations

import structlog

from marketpulse.bus import Message, Subscription, topics
from marketpulse.bus.topics import CandlesEvent, TickersEvent
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.service import CONSUMER_GROUP
from marketpulse.trading.paper.strategy_runner import MINUTE_MS

log = structlog.get_logger(__name__)

class PaperRunner:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        services = runtime.services  # the same instances the HTTP views use (one per-owner lock per account)
        self.paper, self.deployments, self.market_clock = services.paper, services.deployments, services.paper_clock
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        await self.deployments.sync_from_store()
        bus = self.runtime.bus
        self._subs.append(await bus.subscribe(topics.MARKET_CANDLES, CONSUMER_GROUP, self.on_candles_message))
        self._subs.append(await bus.subscribe(topics.MARKET_TICKERS, CONSUMER_GROUP, self.on_tickers_message))
        log.info("paper trading runner started")

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.close()
        self._subs.clear()

    async def on_candles_message(self, msg: Message[CandlesEvent]) -> None:
        if msg.data.interval != "1m":
            return  # deployments aggregate minutes themselves; other intervals would double-count
        candles = msg.data.candles
        if candles:
            self.market_clock.observe(max(c.open_time for c in candles) + MINUTE_MS)  # the minute's close
        await self.paper.on_candles(candles)
        await self.deployments.sync_from_store()
        await self.deployments.on_candles(candles)

    async def on_tickers_message(self, msg: Message[TickersEvent]) -> None:
        self.market_clock.observe(msg.data.time)
        marks = {row.symbol: row.price for row in msg.data.rows if row.price}
        if marks:
            await self.paper.on_marks(marks)
