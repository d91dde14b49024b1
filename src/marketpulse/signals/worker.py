"""The signal workers: stored webhook signals → subscribers' outbox rows, and signals computed live.

`SignalWorker` (every worker runs one): a `signals.received` nudge processes that signal at once; a poll every
`POLL_S` processes whatever is still `received` (a nudge lost with a crashed API, a signal stored while no worker
ran). `SignalsService.process` claims each row in the transaction that queues its notifications, so several
workers, a repeated nudge or a restart notify nothing twice, and a failed transaction leaves the row waiting.

`ComputedSignals` (the worker holding the `signals-computed` lease): every active config marked `computed` starts
from the stored candles (the last WARM_BARS bars, so a worker taking over computes over the same history) and is
followed on closed candles from the bus (`live.LiveSignals`), and each signal it raises goes through the same
durable write as a webhook's (source `computed`), so the same dedupe, history and delivery apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence

import structlog

from marketpulse.bus import EventBus, Message, Subscription, topics
from marketpulse.clock import Clock
from marketpulse.coordination.lease import LeaseKeeper, LeaseStore
from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import load_candles
from marketpulse.metrics import SIGNAL_PROCESSING_ERRORS, SIGNAL_QUEUE_DEPTH
from marketpulse.signals.core import Accepted, dedupe_key
from marketpulse.signals.live import LiveSignals
from marketpulse.signals.service import SignalsService
from marketpulse.signals.tables import SignalConfigRow

log = structlog.get_logger(__name__)
POLL_S = 1.0
GROUP = "signal-processing"  # shared: a nudge goes to one worker
LEASE = "signals-computed"
WARM_BARS = 2_000  # stored bars a computed config starts from (the ATR's RMA has long forgotten its seed by then)


class SignalWorker:
    def __init__(self, signals: SignalsService, bus: EventBus, *, poll_s: float = POLL_S) -> None:
        self.signals = signals
        self.bus = bus
        self.poll_s = poll_s
        self.processed = 0  # signals this worker processed (tests and logs)
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self.bus.subscribe(topics.SIGNALS_RECEIVED, GROUP, self._on_received)
        self._task = asyncio.create_task(self._poll(), name="signal-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            await self._sub.close()

    async def _on_received(self, msg: Message[topics.SignalReceived]) -> None:
        try:
            self.processed += await self.signals.process(msg.data.signal_id)
        except Exception:  # the row stays `received`: the next poll takes it
            SIGNAL_PROCESSING_ERRORS.inc()
            log.warning("processing a signal failed; the poll retries it", signal=msg.data.signal_id, exc_info=True)

    async def drain(self) -> int:
        """Process every waiting signal (what a poll does); how many this call processed."""
        done = 0
        while ids := await self.signals.pending():
            took = 0
            for sid in ids:
                took += await self.signals.process(sid)
            done += took
            if not took:
                break  # others took them meanwhile
        self.processed += done
        return done

    async def _poll(self) -> None:
        while True:
            try:
                SIGNAL_QUEUE_DEPTH.set((await self.signals.queue())["depth"])
                await self.drain()
            except Exception:
                SIGNAL_PROCESSING_ERRORS.inc()
                log.warning("signal poll failed; retrying", exc_info=True)
            await asyncio.sleep(self.poll_s)  # a worker loop's cadence (wall time), not market logic


class ComputedSignals:
    """Live signals of the `computed` configs, on the worker holding the lease."""

    def __init__(self, signals: SignalsService, bus: EventBus, leases: LeaseStore, *, ttl_ms: int,
                 clock: Clock) -> None:
        self.signals = signals
        self.bus = bus
        self.live: dict[str, tuple[SignalConfigRow, LiveSignals]] = {}
        self.raised = 0
        self._subs: list[Subscription] = []
        self.lease = LeaseKeeper(leases, LEASE, ttl_ms=ttl_ms, clock=clock, on_acquired=self._run_here,
                                 on_lost=self._stop_here)

    async def start(self) -> None:
        await self.lease.start()

    async def stop(self) -> None:
        await self.lease.stop()

    async def _run_here(self) -> None:
        await self.reload()
        self._subs = [
            await self.bus.subscribe(topics.SIGNAL_CONFIGS_CHANGED, f"signal-configs-{uuid.uuid4().hex[:8]}",
                                     self._on_change, ephemeral=True),
            await self.bus.subscribe(topics.MARKET_CANDLES, "signals-computed", self._on_candles, takeover=True),
        ]

    async def _stop_here(self) -> None:
        for sub in self._subs:
            await sub.close()
        self._subs = []

    async def reload(self) -> None:
        """Follow every active computed config (a changed config starts over with its new parameters)."""
        rows = [r for r in await self.signals.list_configs(active_only=True) if r.computed]
        kept: dict[str, tuple[SignalConfigRow, LiveSignals]] = {}
        for row in rows:
            known = self.live.get(row.id)
            if known is not None and known[0].updated_at_ms == row.updated_at_ms:
                kept[row.id] = known
            else:
                live = LiveSignals(row.symbol, Interval.parse(row.timeframe), row.strategy, dict(row.params))
                live.warm(await load_candles(self.signals.sessions, row.symbol, row.timeframe, limit=WARM_BARS))
                kept[row.id] = (row, live)
        self.live = kept

    async def _on_change(self, msg: Message[topics.SignalConfigChanged]) -> None:
        await self.reload()

    async def _on_candles(self, msg: Message[topics.CandlesEvent]) -> None:
        await self.on_candles(msg.data.candles)

    async def on_candles(self, candles: Sequence[Candle]) -> None:
        for candle in candles:
            for row, live in self.live.values():
                if (found := live.on_candle(candle)) is not None:
                    await self._raise(row, live, *found)

    async def _raise(self, row: SignalConfigRow, live: LiveSignals, action: str, bar_time: int, price: float) -> None:
        signal = Accepted(action=action, symbol=row.symbol, interval=live.interval, price=price, bar_time=bar_time,
                          dedupe_key=dedupe_key(bar_time, action), stale=False)
        payload = {"action": action, "symbol": row.symbol, "timeframe": row.timeframe, "price": price,
                   "bar_time": bar_time, "strategy": row.strategy, "parameters": row.params}
        await self.signals.ingest(row, signal, payload=payload, raw=None, source="computed")
        self.raised += 1
