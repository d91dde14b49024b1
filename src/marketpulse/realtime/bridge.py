"""Bus → API state and Socket.IO clients.

Two kinds of subscription, because several API processes may share one bus:
- *state* (a consumer group unique to this process, so every process sees every message): keeps this process's
  MarketFeed and OpenInterestCache complete, for the HTTP endpoints and the snapshot a client gets on connect;
- *broadcast* (one group shared by all API processes, so each message is handled by one of them): turns the
  message into Socket.IO events. With a Redis manager, that one emit reaches the clients of every process;
  emitting from every process instead would deliver each event once per process.
The open-interest figures are persisted from a third, shared group, so each update is written once.

`liquidations` (each bus message's batch) goes to every tier's room once, like a volume alert.

Events for users (`volume-alert`, and `paper-fill` / `risk-halt` to their owner's room `user-{owner}`) are pushed
once per bus message id: a message redelivered, or claimed from a slow API process by another one, is dropped
(`EventBus.first_time`, shared by every process of the deployment). Market patches need no such guard: they are
state, merged per symbol, and pushing one twice changes nothing on the screen.

Tiers (`realtime/tiers.py`, from the plan table): each connection is in the room of its plan's tier
(`tier-free`, `tier-pro`, `tier-elite`). Real-time tiers get market patches as they come and each alert at once
(`volume-alert`); the others get a whole table of their own (`market`, `full: true`) at each wall-clock boundary of
their refresh period and their alerts as one `volume-alerts` batch at each boundary of their batch period. Every
process queues every alert (state group); at a boundary, the process that claims `tier + boundary` first
(`first_time`) emits the batch or table through the manager, so each reaches every client once. A user whose plan
or status changes (`accounts.changed`) is moved by each process holding one of their connections: to the new
tier's room with a fresh table at once, or disconnected when no longer active.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import socketio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.core import Status
from marketpulse.bus import EventBus, Message, Subscription, topics
from marketpulse.bus.topics import (
    AccountChanged,
    LiquidationsEvent,
    OpenInterestEvent,
    PaperFill,
    RiskHalt,
    TickersEvent,
    Topic,
    UserNotification,
)
from marketpulse.clock import Clock
from marketpulse.detection.models import VolumeAlert
from marketpulse.marketdata.liquidations import liquidation_json
from marketpulse.marketdata.open_interest import OpenInterestCache, save_open_interest, validate_usd_values
from marketpulse.realtime import metrics
from marketpulse.realtime.market_feed import MarketFeed, PatchBuffer, patch_of
from marketpulse.realtime.tiers import TIERS, Tier, due_at, next_boundary, plan_of, tier_of

log = structlog.get_logger(__name__)

MARKET_EVENT = "market"
VOLUME_ALERT_EVENT = "volume-alert"
VOLUME_ALERTS_EVENT = "volume-alerts"  # a batch: {tier, at, alerts: [...]}
TIER_EVENT = "tier"  # the connection's plan, tier and next boundaries (see Tier.describe)
PAPER_FILL_EVENT = "paper-fill"
RISK_HALT_EVENT = "risk-halt"
NOTIFICATION_EVENT = "notification"
LIQUIDATIONS_EVENT = "liquidations"  # {liquidations: [{symbol, side, price, quantity, usd, time}, …]}, to everyone
BROADCAST_GROUP = "api-broadcast"
OPEN_INTEREST_STORE_GROUP = "api-open-interest-store"
# How long a pushed message id is remembered: far beyond any redelivery (claims come within seconds, a restarted
# API process finds its group's pending messages within minutes).
PUSHED_TTL_MS = 24 * 3_600_000


def user_room(owner: str) -> str:
    """The Socket.IO room of one owner's connections (paper fills, risk halts; later their alerts by tier)."""
    return f"user-{owner}"


@dataclass
class Connection:
    """One Socket.IO connection of this process: whom it signed in as and the tier room it is in."""

    user_id: str | None  # None: anonymous
    plan: str
    tier: Tier


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
        self._flush_task: asyncio.Task[None] | None = None  # the debounce timer
        # The fan-out of the patches, apart from the timer: the next timer starts as soon as one fires, so the
        # debounce (not the time an emit to every client takes) sets the update rate; one emitter at a time
        # keeps each client's patches in order, and a timer that fires during a fan-out is served right after it.
        self._emitting: asyncio.Task[None] | None = None
        self._emit_due = False
        self._schedule_task: asyncio.Task[None] | None = None
        self._subs: list[Subscription] = []
        self._connections: dict[str, Connection] = {}  # sid → connection, this process's only
        # Alerts waiting for their tier's next batch, by bus message id (a redelivery is queued once).
        self._batches: dict[str, dict[str, dict[str, Any]]] = {t.name: {} for t in TIERS if not t.instant_alerts}

    async def start(self) -> None:
        state = process_group("api-state")
        plan: list[tuple[Topic[Any], str, Callable[[Message[Any]], Awaitable[None]]]] = [
            (topics.MARKET_TICKERS, state, self._on_tickers_state),
            (topics.MARKET_OPEN_INTEREST, state, self._on_open_interest_state),
            (topics.ALERTS_VOLUME, state, self._on_volume_alert_state),
            (topics.ACCOUNT_CHANGED, state, self._on_account_changed),
            (topics.MARKET_TICKERS, BROADCAST_GROUP, self._on_tickers_broadcast),
            (topics.MARKET_OPEN_INTEREST, BROADCAST_GROUP, self._on_open_interest_broadcast),
            (topics.ALERTS_VOLUME, BROADCAST_GROUP, self._on_volume_alert),
            (topics.PAPER_FILLS, BROADCAST_GROUP, self._on_paper_fill),
            (topics.RISK_HALTS, BROADCAST_GROUP, self._on_risk_halt),
            (topics.NOTIFICATIONS_USER, BROADCAST_GROUP, self._on_notification),
            (topics.MARKET_LIQUIDATIONS, BROADCAST_GROUP, self._on_liquidations),
            (topics.MARKET_OPEN_INTEREST, OPEN_INTEREST_STORE_GROUP, self._on_open_interest_store),
        ]
        for topic, group, handler in plan:
            self._subs.append(await self._bus.subscribe(topic, group, handler, ephemeral=group == state))
        if self._periods():
            self._schedule_task = asyncio.create_task(self._run_schedule(), name="realtime:tier-schedule")
        log.info("realtime bridge started", state_group=state)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.close()
        self._subs.clear()
        for task in (self._flush_task, self._emitting, self._schedule_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- connections (this process's) ---

    async def join(self, sid: str, user_id: str | None, plan: str | None) -> None:
        """A new connection: into its tier's room, then its table and its tier's figures (local emits)."""
        conn = Connection(user_id, plan_of(plan).name, tier_of(plan))
        self._connections[sid] = conn
        await self._sio.enter_room(sid, conn.tier.room)
        await self.send_snapshot(sid)

    def leave(self, sid: str) -> None:
        self._connections.pop(sid, None)

    def connection(self, sid: str) -> Connection | None:
        return self._connections.get(sid)

    async def send_snapshot(self, sid: str) -> None:
        """The table as the connection's tier sees it, and the tier's figures, to one client (it is local: no
        need to go through the manager)."""
        conn = self._connections.get(sid) or Connection(None, plan_of(None).name, tier_of(None))
        payload = {"full": True, "time": self._feed.updated_at, "rows": conn.tier.rows(self._feed.snapshot()),
                   "tier": conn.tier.name}
        await self._sio.emit(TIER_EVENT, conn.tier.describe(plan_of(conn.plan), self._clock.now_ms()), to=sid,
                             ignore_queue=True)
        await self._sio.emit(MARKET_EVENT, payload, to=sid, ignore_queue=True)

    async def _on_account_changed(self, msg: Message[AccountChanged]) -> None:
        """Every process moves its own connections of the user: to the new tier at once, or out when the user
        may no longer sign in."""
        change = msg.data
        for sid, conn in list(self._connections.items()):
            if conn.user_id != change.user_id:
                continue
            if change.status != Status.ACTIVE:
                self.leave(sid)
                await self._sio.disconnect(sid)
                continue
            new = Connection(conn.user_id, plan_of(change.plan).name, tier_of(change.plan))
            if new.tier != conn.tier:
                await self._sio.leave_room(sid, conn.tier.room)
                await self._sio.enter_room(sid, new.tier.room)
            self._connections[sid] = new
            await self.send_snapshot(sid)
        log.info("account change applied to live connections", user=change.user_id, plan=change.plan,
                 status=change.status)

    # --- tier boundaries (wall clock) ---

    @staticmethod
    def _periods() -> set[int]:
        return {p for t in TIERS for p in (t.alert_batch_ms, t.table_refresh_ms) if p > 0}

    async def _run_schedule(self) -> None:
        """Sleep on the injected clock until the next boundary of any tier, then deliver what is due at it."""
        periods = self._periods()
        while True:
            at = min(next_boundary(self._clock.now_ms(), p) for p in periods)
            await self._clock.sleep_until(at)
            try:
                await self.on_boundary(at)
            except Exception:
                log.exception("tier delivery failed", at=at)

    async def on_boundary(self, at: int) -> None:
        """Deliver each tier's alert batch and table due at `at` (a multiple of their periods)."""
        for tier in TIERS:
            if due_at(at, tier.alert_batch_ms):
                await self._deliver_batch(tier, at)
            if due_at(at, tier.table_refresh_ms):
                await self._deliver_table(tier, at)

    async def _deliver_batch(self, tier: Tier, at: int) -> None:
        queued = self._batches[tier.name]
        if not queued:
            return
        alerts = sorted(queued.values(), key=lambda a: a.get("timestamp") or 0)
        queued.clear()
        payload = {"tier": tier.name, "at": at, "nextAt": at + tier.alert_batch_ms, "alerts": alerts}
        await self._emit_once(f"batch:{tier.name}:{at}", VOLUME_ALERTS_EVENT, payload, tier.room)

    async def _deliver_table(self, tier: Tier, at: int) -> None:
        payload = {"full": True, "time": self._feed.updated_at, "rows": tier.rows(self._feed.snapshot()),
                   "tier": tier.name, "at": at, "nextAt": at + tier.table_refresh_ms}
        await self._emit_once(f"table:{tier.name}:{at}", MARKET_EVENT, payload, tier.room)

    async def _emit_once(self, key: str, event: str, payload: Any, room: str) -> None:
        """Emit to the room unless another API process of the deployment did for this key already."""
        if not await self._bus.first_time(f"push:{key}", PUSHED_TTL_MS):
            metrics.DUPLICATES_DROPPED.labels(event).inc()
            return
        try:
            await self._sio.emit(event, payload, to=room)
        except BaseException:
            await self._bus.forget_key(f"push:{key}")
            raise
        metrics.EMITS.labels(event).inc()

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
        """Each alert at once to the tiers without batches (elite)."""
        rooms = [t.room for t in TIERS if t.instant_alerts]
        if rooms:
            await self._push_once(msg, VOLUME_ALERT_EVENT, msg.data.to_wire(), room=rooms)

    async def _on_volume_alert_state(self, msg: Message[VolumeAlert]) -> None:
        """Queued for each batched tier's next boundary, in every process (whichever delivers the batch has it)."""
        wire = msg.data.to_wire()
        for queued in self._batches.values():
            queued[msg.id] = wire

    async def _on_liquidations(self, msg: Message[LiquidationsEvent]) -> None:
        """Every tier's room: liquidations are public market data, like the table."""
        payload = {"liquidations": [liquidation_json(liq) for liq in msg.data.liquidations]}
        if payload["liquidations"]:
            await self._push_once(msg, LIQUIDATIONS_EVENT, payload, room=[t.room for t in TIERS])

    async def _on_paper_fill(self, msg: Message[PaperFill]) -> None:
        await self._push_once(msg, PAPER_FILL_EVENT, msgspec.to_builtins(msg.data), room=user_room(msg.data.owner_id))

    async def _on_risk_halt(self, msg: Message[RiskHalt]) -> None:
        await self._push_once(msg, RISK_HALT_EVENT, msgspec.to_builtins(msg.data), room=user_room(msg.data.owner_id))

    async def _on_notification(self, msg: Message[UserNotification]) -> None:
        await self._push_once(msg, NOTIFICATION_EVENT, msgspec.to_builtins(msg.data),
                              room=user_room(msg.data.owner_id))

    async def _push_once(self, msg: Message[Any], event: str, payload: Any, *,
                         room: str | list[str] | None = None) -> None:
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
        self._start_emit()

    def _start_emit(self) -> asyncio.Task[None]:
        self._emit_due = True
        if self._emitting is None or self._emitting.done():
            self._emitting = asyncio.create_task(self._emit_while_due(), name="realtime:market-emit")
        return self._emitting

    async def _emit_while_due(self) -> None:
        while self._emit_due:
            self._emit_due = False
            rows = self._pending.take()
            if not rows:
                continue
            for tier in TIERS:
                if tier.realtime_table:
                    await self._emit_patches(tier, rows)

    def queued_alerts(self, tier: str) -> int:
        """Alerts waiting for `tier`'s next batch in this process."""
        return len(self._batches.get(tier, {}))

    def pending_rows(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Emit the rows changed since the last emit, one entry per symbol, to the real-time tiers (the debounce
        timer starts the same emitter); the other tiers get whole tables at their boundaries. Returns once they are
        out."""
        await self._start_emit()

    async def _emit_patches(self, tier: Tier, rows: list[dict[str, Any]]) -> None:
        if tier.symbols is not None:  # only the symbols in this tier's table now
            shown = {r["symbol"] for r in tier.rows(self._feed.snapshot())}
            rows = [r for r in rows if r["symbol"] in shown]
        patches = [tier.row(r) for r in rows]
        if not patches:
            return
        try:
            await self._sio.emit(MARKET_EVENT, {"full": False, "time": self._feed.updated_at, "rows": patches},
                                 to=tier.room)
            metrics.EMITS.labels(MARKET_EVENT).inc()
        except Exception:
            log.exception("market emit failed", rows=len(patches), tier=tier.name)


def _open_interest_of(msg: Message[OpenInterestEvent]) -> dict[str, float]:
    """Usable entries of an OI message, symbols normalized (unusable ones are logged and counted: the bus has no
    client to tell). The bus already dropped entries that are not finite numbers."""
    values, errors = validate_usd_values(msg.data.data)
    if errors:
        metrics.BAD_ROWS.inc(len(errors))
        log.warning("open interest entries rejected", id=msg.id, errors=errors[:5])
    return values
