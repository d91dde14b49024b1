"""The paper-trading worker: closed candles and tickers from the bus into the paper service and deployments.

`roles.start_worker` starts one per worker process. Its clock is the market's (`EventClock`: the newest candle
close or ticker time seen), so a replay's orders, UTC days and daily-loss days are the replayed market's.
Each candle batch first fills resting manual orders and marks accounts, then steps every deployment (whose
signals become orders for the *next* minute's open), so a decision can never fill on the candle it was decided
on. Deployments created or stopped through the API (in this or another process) are picked up from the store
before each batch.

Every worker starts a runner, but only the holder of the `paper-trading` lease runs it (a singleton duty: its
deployments need every minute, in order). The others wait; when the holder dies they take over within the lease
TTL, rebuild the deployments from their stored snapshots and continue the shared consumer group where the old
holder stopped: its unacknowledged messages first (`takeover=True`), then the ones published since.
"""

from __future__ import annotations

import structlog

from marketpulse.bus import Message, Subscription, topics
from marketpulse.bus.topics import CandlesEvent, TickersEvent
from marketpulse.coordination.lease import LeaseKeeper
from marketpulse.marketdata.intervals import MINUTE_MS
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.service import CONSUMER_GROUP

log = structlog.get_logger(__name__)

LEASE = "paper-trading"


class PaperRunner:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        services = runtime.services  # the same instances the HTTP views use (one per-owner lock per account)
        self.paper, self.deployments, self.market_clock = services.paper, services.deployments, services.paper_clock
        self._subs: list[Subscription] = []
        self.lease = LeaseKeeper(
            runtime.leases, LEASE, ttl_ms=int(runtime.settings.lease_ttl_s * 1000), clock=runtime.clock,
            on_acquired=self._run_here, on_lost=self._stop_here,
        )

    async def start(self) -> None:
        """Join the election: runs the duty now if the lease is free, else as soon as it is taken over."""
        await self.lease.start()

    async def stop(self) -> None:
        await self.lease.stop()

    async def _run_here(self) -> None:
        self.deployments.unload()  # whatever ran here before is stale: another holder may have moved them on
        await self.deployments.sync_from_store()
        bus = self.runtime.bus
        self._subs.append(await bus.subscribe(topics.MARKET_CANDLES, CONSUMER_GROUP, self.on_candles_message,
                                              takeover=True))
        self._subs.append(await bus.subscribe(topics.MARKET_TICKERS, CONSUMER_GROUP, self.on_tickers_message,
                                              takeover=True))
        log.info("paper trading runner started")

    async def _stop_here(self) -> None:
        for sub in self._subs:
            await sub.close()
        self._subs.clear()
        self.deployments.unload()
        log.info("paper trading runner stopped")

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
