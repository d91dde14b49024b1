"""SpikeScanner: the detector's adapter to the bus, the clock and the alert store.

It feeds `market.candles` and `market.tickers` into a `VolumeSpikeDetector` and, on the injected clock, scans at
every 5-minute boundary b: detector.scan(b) → store (idempotent) → publish each newly stored alert on
`alerts.volume` in its camelCase wire form.

Race between the bus and the clock: the candle closing at b is published at b and reaches us a moment later. The
scan for b therefore runs at b + `grace_ms` (on the same injected clock) but still evaluates time b — the detector
counts only candles closed by b, so waiting can add late candles and never future ones. Candles later than the grace
are missed by that scan (they count from the next one). Default 2 s of market time: enough for a live Binance
stream; a replay at 60× that publishes in bursts may want more (it is only 33 ms of real time there).

The clock and the candles can also drift apart the other way: a worker's clock that follows tickers through another
consumer may run ahead of this scanner's candle consumer (a replay's start-up burst). With `await_candles=True`
(what a worker apart from its source uses) a scan also waits for its own watermark (the newest candle close it
has handled) to reach b, for at most `LATE_CANDLE_LIMIT_MS` of market time past b: an exchange outage must not
stall the scans for ever.

If the clock leaps more than an hour ahead (a suspended laptop, a replay seek), missed scans are skipped rather than
replayed: their hours' candles are gone from the detector's bounded memory anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.bus import EventBus, topics
from marketpulse.bus.base import Message, Subscription
from marketpulse.clock import Clock
from marketpulse.detection.models import HOUR_MS, VolumeAlert
from marketpulse.detection.service import VolumeAlertStore
from marketpulse.detection.volume_spike import SCAN_EVERY_MS, VolumeSpikeDetector
from marketpulse.marketdata.intervals import Interval
from marketpulse.marketdata.models import Candle, MarketRow
from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_GRACE_MS = 2_000
LATE_CANDLE_LIMIT_MS = 60_000
WATERMARK_POLL_S = 0.05  # real seconds between looks at the clock while waiting for candles
CONSUMER_GROUP = "detection.volume-spikes"


class ScannerParts(Protocol):
    """What the scanner needs; a `marketpulse.runtime.Runtime` is one."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus


class SpikeScanner:
    def __init__(
        self,
        parts: ScannerParts,
        clock: Clock | None = None,
        *,
        detector: VolumeSpikeDetector | None = None,
        grace_ms: int = DEFAULT_GRACE_MS,
        group: str = CONSUMER_GROUP,
        await_candles: bool = False,
        group_is_ours: bool = False,
    ) -> None:
        settings = parts.settings
        clock = clock or getattr(parts, "clock", None)  # a Runtime carries its clock
        if clock is None:
            raise TypeError("SpikeScanner needs a clock: pass one, or a Runtime that carries it")
        self.clock: Clock = clock
        self.detector = detector or VolumeSpikeDetector(settings.spike_ratio, settings.spike_min_quote_volume)
        self.store = VolumeAlertStore(parts.sessions)
        self.grace_ms = grace_ms
        self.last_scan_ms: int | None = None
        self._bus = parts.bus
        self._group = group
        self._subscriptions: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self._scanned = asyncio.Condition()
        self.await_candles = await_candles
        self._group_is_ours = group_is_ours  # a per-process group: deleted when the scanner stops
        self.watermark_ms = 0  # newest candle close handled
        self._candles_arrived = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to candles and tickers and start the scan loop (returns at once)."""
        if self._task is not None:
            return
        self._subscriptions = [
            await self._bus.subscribe(topics.MARKET_CANDLES, self._group, self._on_candles,
                                      ephemeral=self._group_is_ours),
            await self._bus.subscribe(topics.MARKET_TICKERS, self._group, self._on_tickers,
                                      ephemeral=self._group_is_ours),
        ]
        self._task = asyncio.create_task(self._loop(), name="detection:spike-scanner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sub in self._subscriptions:
            await sub.close()
        self._subscriptions = []

    async def wait_for_scan(self, t_ms: int) -> None:
        """Return once the scan for boundary `t_ms` (or a later one) has stored and published its alerts."""
        async with self._scanned:
            await self._scanned.wait_for(lambda: self.last_scan_ms is not None and self.last_scan_ms >= t_ms)

    # --- the scan -------------------------------------------------------------------------------------------------

    async def scan_once(self, t_ms: int) -> list[VolumeAlert]:
        """Scan at boundary `t_ms`, store, publish; returns the newly stored alerts."""
        stored = await self.store.save(self.detector.scan(t_ms))
        for alert in stored:
            await self._bus.publish(topics.ALERTS_VOLUME, alert.to_wire())
        if stored:
            log.info("volume alerts", scan_ms=t_ms, count=len(stored), symbols=sorted({a.symbol for a in stored}))
        return stored

    async def _loop(self) -> None:
        boundary = _ceil_to_scan(self.clock.now_ms())
        while True:
            await self.clock.sleep_until(boundary + self.grace_ms)
            if self.await_candles:
                await self._await_candles_through(boundary)
            try:
                await self.scan_once(boundary)
            except Exception:  # a database hiccup must not end the scanner; the next scan goes on
                log.exception("volume spike scan failed", scan_ms=boundary)
            await self._mark_scanned(boundary)
            boundary += SCAN_EVERY_MS
            now = self.clock.now_ms()
            if now - boundary > HOUR_MS:
                boundary = _ceil_to_scan(now)

    async def _await_candles_through(self, boundary: int) -> None:
        """Wait until this scanner has handled candles closing at `boundary`, or the clock passes the limit."""
        deadline = boundary + max(self.grace_ms, LATE_CANDLE_LIMIT_MS)
        while self.watermark_ms < boundary and self.clock.now_ms() < deadline:
            self._candles_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._candles_arrived.wait(), WATERMARK_POLL_S)

    async def _mark_scanned(self, t_ms: int) -> None:
        async with self._scanned:
            self.last_scan_ms = t_ms
            self._scanned.notify_all()

    # --- bus handlers ---------------------------------------------------------------------------------------------

    async def _on_candles(self, message: Message) -> None:
        for raw in message.data.get("candles", ()):
            try:
                candle = msgspec.convert(raw, Candle)
            except msgspec.ValidationError as exc:
                # Acknowledge and drop: redelivering a malformed candle can't make it valid.
                log.warning("malformed candle dropped", topic=message.topic, id=message.id, error=str(exc))
                continue
            self.detector.on_candle(candle)
            close_ms = Interval.parse(candle.interval).close_time(candle.open_time)
            if candle.closed and close_ms > self.watermark_ms:
                self.watermark_ms = close_ms
                self._candles_arrived.set()

    async def _on_tickers(self, message: Message) -> None:
        try:
            rows = msgspec.convert(message.data.get("rows", ()), list[MarketRow])
        except msgspec.ValidationError as exc:
            log.warning("malformed market rows dropped", topic=message.topic, id=message.id, error=str(exc))
            return
        self.detector.on_market_rows(rows)


def _ceil_to_scan(t_ms: int) -> int:
    """The first 5-minute boundary at or after `t_ms`."""
    return -(-t_ms // SCAN_EVERY_MS) * SCAN_EVERY_MS
