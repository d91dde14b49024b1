"""SpikeScanner: the detector's adapter to the bus, the clock and the alert store.

It feeds `market.candles` and `market.tickers` into a `VolumeSpikeDetector` and, on the injected clock, scans at
every 5-minute boundary b, in two phases: the detector proposes the alerts of b, the store accepts them (idempotent,
in one transaction with "b is scanned"), and only then does the detector commit its state; each newly stored alert
is then published on `alerts.volume` in its camelCase wire form, by this process only when its insert created it.
A failed write is retried for the same b (backing off) before any later boundary is scanned, so a database hiccup
delays alerts instead of losing them. A boundary more than an hour old is given up: its hour is over.

Race between the bus and the clock: the candle closing at b is published at b and reaches us a moment later. The
scan for b therefore runs at b + `grace_ms` (on the same injected clock) but still evaluates time b — the detector
counts only candles closed by b, so waiting can add late candles and never future ones. Candles later than the grace
are missed by that scan (they count from the next one). Default `PULSE_SPIKE_SCAN_GRACE_MS`, 5 s of market time:
ample for a live Binance stream, and 83 ms of real time for a replay at 60× that publishes in bursts.

The clock and the candles can also drift apart the other way: a worker's clock that follows tickers through another
consumer may run ahead of this scanner's candle consumer (a replay's start-up burst of history, on a busy machine).
With `await_candles=True` (what a worker apart from its source uses) a scan also waits for its own watermark (the
newest candle close it has handled) to reach b. It gives up only when the candles have *stopped*: the clock is
`LATE_CANDLE_LIMIT_MS` of market time past b and no candle message reached this scanner for `candle_quiet_s` real
seconds (an exchange outage must not stall the scans for ever; a consumer still working through a burst is waited for).

Start and restart: the scanner's consumer group is its own and starts at the stream's end, so before its first scan
it warms up from the store: the stored 1-minute candles from the hour before the first boundary it owes, and the
SPIKEs of those hours (so their HALF/FULL updates still come). It owes every boundary after the last stored scan
(within the previous and current hour), so a restart scans what it missed instead of losing up to two hours of
alerts. Candles published while it was down reach the store through the recorder, whose shared group resumes where
it stopped; the warm-up waits (up to twice PULSE_BUS_CLAIM_IDLE_MS, since a dead worker's unacknowledged candles
come back once claimed, plus `STORE_CATCH_UP_MARGIN_S`) until the store has every minute up to the first candle the
bus gave us.

If the clock leaps more than an hour ahead (a suspended laptop, a replay seek), missed scans are skipped rather than
replayed: their hours' candles are gone from the detector's bounded memory anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential
from tenacity.wait import wait_base

from marketpulse.bus import EventBus, topics
from marketpulse.bus.base import Message, Subscription
from marketpulse.bus.topics import CandlesEvent, TickersEvent
from marketpulse.clock import Clock
from marketpulse.detection.models import VolumeAlert
from marketpulse.detection.service import VolumeAlertStore, stored_minutes, stored_minutes_have_holes
from marketpulse.detection.volume_spike import SCAN_EVERY_MS, VolumeSpikeDetector
from marketpulse.marketdata.intervals import HOUR_MS, MINUTE_MS, Interval
from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_GRACE_MS: int = Settings.model_fields["spike_scan_grace_ms"].default  # one default, the setting's
LATE_CANDLE_LIMIT_MS = 60_000
CANDLE_QUIET_S = 2.0  # real seconds without a candle message before late candles count as stopped
STORE_CATCH_UP_MARGIN_S = 10.0  # real seconds beyond two claim periods that a restarted scanner waits for the recorder
WATERMARK_POLL_S = 0.05  # real seconds between looks at the clock while waiting for candles
CONSUMER_GROUP = "detection.volume-spikes"
STOP_WAIT_S = 3.0  # real seconds stop() waits for the loop to finish a database call before cancelling it
RETRY_WAIT = wait_exponential(multiplier=0.1, max=5)  # real seconds between attempts at one failed scan


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
        store: VolumeAlertStore | None = None,
        grace_ms: int = DEFAULT_GRACE_MS,
        group: str = CONSUMER_GROUP,
        await_candles: bool = False,
        group_is_ours: bool = False,
        candle_quiet_s: float = CANDLE_QUIET_S,
        retry_wait: wait_base = RETRY_WAIT,
    ) -> None:
        settings = parts.settings
        clock = clock or getattr(parts, "clock", None)  # a Runtime carries its clock
        if clock is None:
            raise TypeError("SpikeScanner needs a clock: pass one, or a Runtime that carries it")
        self.clock: Clock = clock
        self.detector = detector or VolumeSpikeDetector(settings.spike_ratio, settings.spike_min_quote_volume)
        self.store = store or VolumeAlertStore(parts.sessions)
        self.grace_ms = grace_ms
        self.last_scan_ms: int | None = None
        self._sessions = parts.sessions
        self._bus = parts.bus
        self._group = group
        self._subscriptions: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self._scanned = asyncio.Condition()
        self.await_candles = await_candles
        self._group_is_ours = group_is_ours  # a per-process group: deleted when the scanner stops
        self.watermark_ms = 0  # newest candle close handled
        self._first_bus_open_ms: int | None = None  # the bus gives us candles from here on; older ones: the store
        self._candles_arrived = asyncio.Event()
        self._candle_quiet_s = candle_quiet_s
        self._candle_seen_at = 0.0  # loop time of the last candle message (a consumer catching up is busy)
        self._retry_wait = retry_wait
        self._claim_idle_s = settings.bus_claim_idle_ms / 1000
        self._waiting = asyncio.Event()  # set while the loop waits (no database call in flight): safe to cancel

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to candles and tickers and start the scan loop (returns at once)."""
        if self._task is not None:
            return
        self._candle_seen_at = asyncio.get_running_loop().time()
        self._subscriptions = [
            await self._bus.subscribe(topics.MARKET_CANDLES, self._group, self._on_candles,
                                      ephemeral=self._group_is_ours),
            await self._bus.subscribe(topics.MARKET_TICKERS, self._group, self._on_tickers,
                                      ephemeral=self._group_is_ours),
        ]
        self._task = asyncio.create_task(self._loop(), name="detection:spike-scanner")

    async def stop(self) -> None:
        if self._task is not None:
            # Cancel the loop only while it waits: cancelled inside a database call, SQLAlchemy's connection reset
            # fails and logs an error with a traceback. A scan takes milliseconds; the bound is for a stuck one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._waiting.wait(), STOP_WAIT_S)
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
        """Scan at boundary `t_ms`: propose, store, commit, publish; returns the newly stored alerts.

        Raises when the store does; the detector is then as it was, so scanning `t_ms` again is a clean retry."""
        proposal = self.detector.propose(t_ms)
        stored = await self.store.save(proposal.alerts, scanned_ms=t_ms)
        self.detector.commit(proposal)
        for alert in stored:  # published here only: another worker's insert of the same alert returned nothing
            await self._bus.publish(topics.ALERTS_VOLUME, alert)
        if stored:
            log.info("volume alerts", scan_ms=t_ms, count=len(stored),
                     alerts=sorted(f"{a.symbol}/{a.alert_type}" for a in stored))
        return stored

    async def _loop(self) -> None:
        boundary = _ceil_to_scan(await self._market_now())
        await self._wait_for_boundary(boundary)
        missed = await self._warm_up(boundary)
        log.info("volume spike scanner scanning", first_scan_ms=missed[0] if missed else boundary,
                 missed_boundaries=len(missed))
        for b in missed:
            await self._scan_until_stored(b)
        while True:
            await self._scan_until_stored(boundary)
            boundary += SCAN_EVERY_MS
            now = self.clock.now_ms()
            if now - boundary > HOUR_MS:
                boundary = _ceil_to_scan(now)
            await self._wait_for_boundary(boundary)

    async def _market_now(self) -> int:
        """The clock's time, once it has one (a worker's EventClock reads 0 until the first ticker arrives)."""
        await self._wait(self.clock.sleep_until(1))
        return self.clock.now_ms()

    async def _wait_for_boundary(self, boundary: int) -> None:
        await self._wait(self.clock.sleep_until(boundary + self.grace_ms))
        if self.await_candles:
            await self._wait(self._await_candles_through(boundary))

    async def _wait(self, waiting: Awaitable[None]) -> None:
        self._waiting.set()
        try:
            await waiting
        finally:
            self._waiting.clear()

    async def _scan_until_stored(self, t_ms: int) -> None:
        """Scan `t_ms` until the store takes it (a failed write retries the same time), then mark it scanned."""
        retrying = AsyncRetrying(
            wait=self._retry_wait,
            retry=retry_if_exception_type(Exception),
            stop=lambda _state: self.clock.now_ms() - t_ms > HOUR_MS,  # its hour is over: nothing left to save
            before_sleep=_log_retry(t_ms),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.scan_once(t_ms)
        except Exception:
            log.exception("volume spike scan given up", scan_ms=t_ms)
        await self._mark_scanned(t_ms)

    async def _await_candles_through(self, boundary: int) -> None:
        """Wait until this scanner has handled candles closing at `boundary`, or the candles have stopped."""
        deadline = boundary + max(self.grace_ms, LATE_CANDLE_LIMIT_MS)
        loop = asyncio.get_running_loop()
        while self.watermark_ms < boundary:
            quiet = loop.time() - self._candle_seen_at >= self._candle_quiet_s
            if quiet and self.clock.now_ms() >= deadline:
                log.warning("scanning without late candles", scan_ms=boundary, watermark_ms=self.watermark_ms)
                return
            self._candles_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._candles_arrived.wait(), WATERMARK_POLL_S)

    async def _mark_scanned(self, t_ms: int) -> None:
        async with self._scanned:
            self.last_scan_ms = t_ms
            self._scanned.notify_all()

    # --- warm-up --------------------------------------------------------------------------------------------------

    async def _warm_up(self, first: int) -> list[int]:
        """Load what the store knows that the bus won't tell us; returns the missed boundaries before `first`."""
        last = await self.store.last_scan()
        earliest = first - first % HOUR_MS - HOUR_MS  # the previous hour: older boundaries' hours are over
        start = first if last is None else min(first, max(_ceil_to_scan(last + 1), earliest))
        window = start - start % HOUR_MS - HOUR_MS  # a scan in hour H compares against H-1
        await self._await_recorder(window)
        for candle in await stored_minutes(self._sessions, window, first + SCAN_EVERY_MS):
            self.detector.on_candle(candle)
        for spike in await self.store.spikes_since(window):
            minute = (spike.timestamp - spike.hour_timestamp) // MINUTE_MS
            self.detector.restore_spike(spike.symbol, spike.hour_timestamp, minute, spike.previous_volume)
        return list(range(start, first, SCAN_EVERY_MS))

    async def _await_recorder(self, window: int) -> None:
        """Until the stored minutes reach the first candle the bus gave us without a hole (the recorder writes what
        was published while we were down; a dead consumer's unacknowledged messages come last, once claimed)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 2 * self._claim_idle_s + STORE_CATCH_UP_MARGIN_S
        while self._first_bus_open_ms is not None and loop.time() < give_up:
            if not await stored_minutes_have_holes(self._sessions, window, self._first_bus_open_ms):
                return
            await self._wait(asyncio.sleep(WATERMARK_POLL_S))
        if self._first_bus_open_ms is not None:
            log.warning("warm-up with minutes missing from the store", window_ms=window,
                        first_bus_ms=self._first_bus_open_ms)

    # --- bus handlers ---------------------------------------------------------------------------------------------

    async def _on_candles(self, message: Message[CandlesEvent]) -> None:
        self._candle_seen_at = asyncio.get_running_loop().time()
        for candle in message.data.candles:  # malformed rows were dropped by the bus (topics.py)
            self.detector.on_candle(candle)
            if self._first_bus_open_ms is None and candle.closed:
                self._first_bus_open_ms = candle.open_time
            close_ms = Interval.parse(candle.interval).close_time(candle.open_time)
            if candle.closed and close_ms > self.watermark_ms:
                self.watermark_ms = close_ms
                self._candles_arrived.set()

    async def _on_tickers(self, message: Message[TickersEvent]) -> None:
        self.detector.on_market_rows(message.data.rows)


def _ceil_to_scan(t_ms: int) -> int:
    """The first 5-minute boundary at or after `t_ms`."""
    return -(-t_ms // SCAN_EVERY_MS) * SCAN_EVERY_MS


def _log_retry(t_ms: int) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning("volume spike scan failed; retrying the same scan time", scan_ms=t_ms,
                    attempt=state.attempt_number, error=repr(error))

    return before_sleep
