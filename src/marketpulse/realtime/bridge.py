"""Bus → API state and Socket.IO clients.

Two kinds of subscription, because several API processes may share one bus:
- *state* (a consumer group unique to this process, so every process sees every message): keeps this process's
  MarketFeed and OpenInterestCache complete, for the HTTP endpoints and the snapshot a client gets on connect;
- *broadcast* (one group shared by all API processes, so each message is handled by one of them): turns the
  message into Socket.IO events. With a Redis manager, that one emit reaches the clients of every process;
  emitting from every process instead would deliver each event once per process.
The open-interest figures are persisted from a third, shared group, so each update is written once.

Events for users (`volume-alert`, and `paper-fill` / `risk-halt` to their owner's room `user-{owner}`) are pushed
once per bus message id: a message redelivered, or claimed from a slow API process by another one, is dropped
(`EventBus.first_time`, shared by every process of the deployment). Market patches need no such guard: they are
state, merged per symbol, and pushing one twice changes nothing on the screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import socketio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.bus import EventBus, Message, Subscription, topics
from marketpulse.bus.topics import OpenInterestEvent, PaperFill, RiskHalt, TickersEvent, Topic, UserNotification
from marketpulse.clock import Clock
from marketpulse.detection.models import VolumeAlert
from marketpulse.marketdata.open_interest import OpenInterestCache, save_open_interest, validate_usd_values
from marketpulse.realtime import metrics
from marketpulse.realtime.market_feed import MarketFeed, PatchBuffer, patch_of

log = structlog.get_logger(__name__)

MARKET_EVENT = "market"
VOLUME_ALERT_EVENT = "volume-alert"
PAPER_FILL_EVENT = "paper-fill"
RISK_HALT_EVENT = "risk-halt"
NOTIFICATION_EVENT = "notification"
BROADCAST_GROUP = "api-broadcast"
OPEN_INTEREST_STORE_GROUP = "api-open-interest-store"
# How long a pushed message id is remembered: far beyond any redelivery (claims come within seconds, a restarted
# API process finds its group's pending messages within minutes).
PUSHED_TTL_MS = 24 * 3_600_000


def user_room(owner: str) -> str:
    """The Socket.IO room of one owner's connections (paper fills, risk halts; later their alerts by tier)."""
    return f"user-{owner}"


def process_group(prefix: str) -> str:
    """A group name unique to this process (and instance), readable in `XINFO GROUPS`."""
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class RealtimeBridge:
    def __init__(
        self,
        *,
        bus: EventBus,
        sio: socketio.AsyncServer,
        feed: MarketFeed,
        open_interest: OpenInterestCache,
        clock: Clock,
        sessions: async_sessionmaker[AsyncSession],
        debounce_ms: int,
    ) -> None:
        self._bus, self._sio, self._feed, self._oi = bus, sio, feed, open_interest
        self._clock, self._sessions = clock, sessions
        self._debounce_s = debounce_ms / 1000
        self._pending = PatchBuffer()
        self._flush_task: asyncio.Task[None] | None = None
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        state = process_group("api-state")
        plan: list[tuple[Topic[Any], str, Callable[[Message[Any]], Awaitable[None]]]] = [
            (topics.MARKET_TICKERS, state, self._on_tickers_state),
            (topics.MARKET_OPEN_INTEREST, state, self._on_open_interest_state),
            (topics.MARKET_TICKERS, BROADCAST_GROUP, self._on_tickers_broadcast),
            (topics.MARKET_OPEN_INTEREST, BROADCAST_GROUP, self._on_open_interest_broadcast),
            (topics.ALERTS_VOLUME, BROADCAST_GROUP, self._on_volume_alert),
            (topics.PAPER_FILLS, BROADCAST_GROUP, self._on_paper_fill),
            (topics.RISK_HALTS, BROADCAST_GROUP, self._on_risk_halt),
            (topics.NOTIFICATIONS_USER, BROADCAST_GROUP, self._on_notification),
            (topics.MARKET_OPEN_INTEREST, OPEN_INTEREST_STORE_GROUP, self._on_open_interest_store),
        ]
        for topic, group, handler in plan:
            self._subs.append(await self._bus.subscribe(topic, group, handler, ephemeral=group == state))
        log.info("realtime bridge started", state_group=state)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.close()
        self._subs.clear()
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_task

    async def send_snapshot(self, sid: str) -> None:
        """The whole table to one newly connected client (it is local: no need to go through the manager)."""
        payload = {"full": True, "time": self._feed.updated_at, "rows": self._feed.snapshot()}
        await self._sio.emit(MARKET_EVENT, payload, to=sid, ignore_queue=True)

    # --- state (every process) ---

    async def _on_tickers_state(self, msg: Message[TickersEvent]) -> None:
        self._feed.apply_rows(msg.data.rows)

    async def _on_open_interest_state(self, msg: Message[OpenInterestEvent]) -> None:
        values = _open_interest_of(msg)
        # Stamped on arrival: a replay's asOf is market time, not this server's clock (see open_interest.py).
        taken = self._oi.update(values, msg.data.as_of, refreshed_at=self._clock.now_ms())
        self._feed.apply_open_interest(taken)

    async def _on_open_interest_store(self, msg: Message[OpenInterestEvent]) -> None:
        await save_open_interest(self._sessions, _open_interest_of(msg), msg.data.as_of)

    # --- broadcast (one process per message) ---

    async def _on_tickers_broadcast(self, msg: Message[TickersEvent]) -> None:
        patches = [patch_of(r) for r in msg.data.rows]
        # A source's ticker may not know OI; carrying the cached figure lets a symbol's first patch show it.
        for patch in patches:
            if "openInterestUsd" not in patch and (usd := self._oi.get(patch["symbol"])) is not None:
                patch["openInterestUsd"] = usd
        self._queue(patches)

    async def _on_open_interest_broadcast(self, msg: Message[OpenInterestEvent]) -> None:
        values = _open_interest_of(msg)
        # Only symbols in the table: OI covers every perpetual, the table may show fewer, and a client can't
        # draw a row from OI alone.
        self._queue([{"symbol": s, "openInterestUsd": usd} for s, usd in values.items() if self._feed.has(s)])

    async def _on_volume_alert(self, msg: Message[VolumeAlert]) -> None:
        await self._push_once(msg, VOLUME_ALERT_EVENT, msg.data.to_wire())

    async def _on_paper_fill(self, msg: Message[PaperFill]) -> None:
        await self._push_once(msg, PAPER_FILL_EVENT, msgspec.to_builtins(msg.data), room=user_room(msg.data.owner_id))

    async def _on_risk_halt(self, msg: Message[RiskHalt]) -> None:
        await self._push_once(msg, RISK_HALT_EVENT, msgspec.to_builtins(msg.data), room=user_room(msg.data.owner_id))

    async def _on_notification(self, msg: Message[UserNotification]) -> None:
        await self._push_once(msg, NOTIFICATION_EVENT, msgspec.to_builtins(msg.data),
                              room=user_room(msg.data.owner_id))

    async def _push_once(self, msg: Message[Any], event: str, payload: Any, *, room: str | None = None) -> None:
        """Emit unless this message id was pushed already (by this process or another); a failed emit is forgotten,
        so the redelivery that follows pushes it."""
        key = f"push:{msg.topic}:{msg.id}"
        if not await self._bus.first_time(key, PUSHED_TTL_MS):
            metrics.DUPLICATES_DROPPED.labels(event).inc()
            log.info("repeated event not pushed again", topic=msg.topic, id=msg.id, deliveries=msg.deliveries)
            return
        try:
            await self._sio.emit(event, payload, to=room)
        except BaseException:
            await self._bus.forget_key(key)
            raise
        metrics.EMITS.labels(event).inc()

    def _queue(self, patches: list[dict[str, Any]]) -> None:
        self._pending.add(patches)
        if self._pending and (self._flush_task is None or self._flush_task.done()):
            self._flush_task = asyncio.create_task(self._flush_later(), name="realtime:market-flush")

    async def _flush_later(self) -> None:
        # Debounce on the event loop's timer, not the injected Clock: this paces network traffic in real time,
        # whatever speed the market clock runs at.
        await asyncio.sleep(self._debounce_s)
        await self.flush()

    def pending_rows(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Emit the rows changed since the last emit, one entry per symbol (the debounce timer calls this)."""
        rows = self._pending.take()
        if not rows:
            return
        try:
            await self._sio.emit(MARKET_EVENT, {"full": False, "time": self._feed.updated_at, "rows": rows})
            metrics.EMITS.labels(MARKET_EVENT).inc()
        except Exception:
            log.exception("market emit failed", rows=len(rows))


def _open_interest_of(msg: Message[OpenInterestEvent]) -> dict[str, float]:
    """Usable entries of an OI message, symbols normalized (unusable ones are logged and counted: the bus has no
    client to tell). The bus already dropped entries that are not finite numbers."""
    values, errors = validate_usd_values(msg.data.data)
    if errors:
        metrics.BAD_ROWS.inc(len(errors))
        log.warning("open interest entries rejected", id=msg.id, errors=errors[:5])
    return values
