"""The paper-trading worker: closed candles and tickers from the bus into the paper service and deployments.

`roles.start_worker` starts one per worker process. Each candle batch first fills resting manual orders and
marks accounts, then steps every deployment (whose signals become orders for the *next* minute's open), so a
decision can never fill on the candle it was decided on. Deployments created or stopped through the API (in
this or another process) are picked up from the store before each batch.
"""

from __future__ import annotations

import weakref

import msgspec
import structlog

from marketpulse.bus import Message, Subscription, topics
from marketpulse.marketdata.models import Candle
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.deployments import DeploymentService
from marketpulse.trading.paper.service import CONSUMER_GROUP, PaperConfig, PaperTradingService

log = structlog.get_logger(__name__)

# One service per Runtime, shared by the HTTP views and the worker of a `pulse demo` process, so its per-owner
# locks really serialize every writer in the process.
_SERVICES: dict[int, tuple[weakref.ref[Runtime], PaperTradingService, DeploymentService]] = {}


def services_for(runtime: Runtime) -> tuple[PaperTradingService, DeploymentService]:
    entry = _SERVICES.get(id(runtime))
    if entry is None or entry[0]() is not runtime:
        paper = PaperTradingService(runtime.sessions, runtime.bus, runtime.clock,
                                    PaperConfig.from_settings(runtime.settings))
        deployments = DeploymentService(runtime.sessions, paper, history_bars=runtime.settings.paper_history_bars)
        entry = (weakref.ref(runtime), paper, deployments)
        _SERVICES[id(runtime)] = entry
    return entry[1], entry[2]


class PaperRunner:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.paper, self.deployments = services_for(runtime)
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

    async def on_candles_message(self, msg: Message) -> None:
        if msg.data.get("interval", "1m") != "1m":
            return  # deployments aggregate minutes themselves; other intervals would double-count
        candles = msgspec.convert(msg.data.get("candles", []), list[Candle])
        await self.paper.on_candles(candles)
        await self.deployments.sync_from_store()
        await self.deployments.on_candles(candles)

    async def on_tickers_message(self, msg: Message) -> None:
        marks = {row["symbol"]: float(row["price"]) for row in msg.data.get("rows", []) if row.get("price")}
        if marks:
            await self.paper.on_marks(marks)
