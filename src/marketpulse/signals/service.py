"""Signals in the store: configs (administrators'), subscriptions (users', owner-scoped, plan-limited), the
webhook's durable write, and the worker's processing.

The webhook's hot path reads configs from a per-process cache (`ConfigCache`: by token hash and by id, each entry
kept `CONFIG_CACHE_MS` at most) that a change, rotation or deletion empties at once in this process and, through the
`signals.configs_changed` topic, in every other; and it waits for the store (and for Redis: the flood counter's pool is
bounded as well) in `StoreGate`'s queue (first come, first served, bounded by PULSE_WEBHOOK_QUEUE_LIMIT) rather than
in a connection pool's, whose 30 s timeout (or, for Redis, MaxConnectionsError) turned a burst of 1,000 into refused
requests (a 503 is a lost signal for TradingView, which never retries it).

A webhook request is acknowledged once its `signal_history` row is committed (status `received`, unique per
config, bar and action: a repeat inserts nothing and only counts `duplicates`). The worker then processes each
`received` row in one transaction: the row is claimed by a conditional update (`received` → `processed`, so two
workers can't both take it) and one outbox row per subscriber's channel is added beside it
(`delivery.outbox.enqueue`, event `signal:<id>`), so a signal is notified once whoever processes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import String, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import plan_named
from marketpulse.bus import EventBus, Message, Subscription, topics
from marketpulse.clock import Clock
from marketpulse.delivery.core import channel_allowed
from marketpulse.delivery.outbox import enqueue
from marketpulse.delivery.tables import DestinationRow, NotificationRow
from marketpulse.metrics import SIGNAL_LATENCY_SECONDS, SIGNALS_PROCESSED
from marketpulse.settings import Settings
from marketpulse.signals.core import Accepted, params_key
from marketpulse.signals.tables import SignalConfigRow, SignalHistoryRow, SignalRejectRow, SignalSubscriptionRow

log = structlog.get_logger(__name__)
RAW_CHARS = 16_384  # of a body kept in the history or the review list
EVENT_PREFIX = "signal:"  # outbox event keys of signal notifications: signal:<signal id>


CONFIG_CACHE_MS = 30_000  # a cached config is read again after this, even if a change notice was missed
STORE_SLOTS = 8  # webhook writes at once per process: under the pool's 10 (PostgreSQL) so other routes keep some


class NotFound(LookupError):
    pass


class StoreBusy(RuntimeError):
    """PULSE_WEBHOOK_QUEUE_LIMIT requests already wait for the store (503: nothing stored)."""


class StoreGate:
    """Webhook requests take one of `slots` connections (the store's pool, the Redis rate-limit counters', the bus's)
    in arrival order; at most `limit` wait (past that, StoreBusy). Waiting here has no timeout: the burst drains at
    the store's pace, and none is refused while the queue has room."""

    def __init__(self, slots: int, limit: Callable[[], int]) -> None:
        self.slots = slots
        self.limit = limit  # read at each request (the setting)
        self.waiting = 0
        self._free = asyncio.Semaphore(slots)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.waiting >= self.limit():
            raise StoreBusy(f"{self.waiting} webhook requests wait for the store")
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._free.release()


class ConfigCache:
    """Configs by token hash and by id, in this process; each entry read again after `ttl_ms` (injected clock)."""

    def __init__(self, clock: Clock, ttl_ms: int = CONFIG_CACHE_MS) -> None:
        self.clock = clock
        self.ttl_ms = ttl_ms
        self._rows: dict[str, tuple[int, SignalConfigRow]] = {}  # key → (read at, row)
        self.hits = self.misses = 0

    def get(self, key: str) -> SignalConfigRow | None:
        found = self._rows.get(key)
        if found is None or self.clock.now_ms() - found[0] >= self.ttl_ms:
            self.misses += 1
            return None
        self.hits += 1
        return found[1]

    def put(self, row: SignalConfigRow) -> None:
        now = self.clock.now_ms()
        self._rows[f"hash:{row.token_hash}"] = (now, row)
        self._rows[f"id:{row.id}"] = (now, row)

    def forget(self, config_id: str) -> None:
        for key in [k for k, (_, row) in self._rows.items() if row.id == config_id]:
            del self._rows[key]


class DuplicateConfig(ValueError):
    """A config with the same symbol, timeframe, strategy and parameters exists (409)."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id


@dataclass(frozen=True)
class PlanLimit(Exception):
    plan: str
    limit: int

    def detail(self) -> dict[str, Any]:
        return {"reason": "signal_subscriptions", "plan": self.plan, "limit": self.limit,
                "message": f"the {self.plan} plan allows {self.limit} signal subscriptions: drop one, or upgrade"}


class BadChannels(ValueError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("bad channels")
        self.errors = errors


@dataclass(frozen=True)
class Ingested:
    outcome: str  # accepted | duplicate | stale
    signal_id: str | None  # None: a duplicate (the first request's row holds the signal)


@dataclass(frozen=True)
class ConfigStats:
    signals_received: int
    stale: int
    duplicates: int
    pending: int
    users_notified: int
    deliveries: int
    deliveries_failed: int
    median_processing_ms: float | None
    median_delivery_ms: float | None
    rejected: int


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits: the only credential a TradingView alert can carry


class SignalsService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: EventBus, clock: Clock,
                 settings: Settings) -> None:
        self.sessions = sessions
        self.bus = bus
        self.clock = clock
        self.settings = settings
        from marketpulse.accounts.service import limit_storage

        self._flood = MovingWindowRateLimiter(limit_storage(settings.rate_limit_storage,  # type: ignore[arg-type]
                                                            settings.deployment))
        self.cache = ConfigCache(clock)
        self.gate = StoreGate(STORE_SLOTS, lambda: settings.webhook_queue_limit)
        self._changes: Subscription | None = None
        self._following = asyncio.Lock()

    async def follow_changes(self) -> None:
        """Empty the cache's entry of any config changed in another process (a group of this process's own)."""
        async with self._following:
            if self._changes is None:
                self._changes = await self.bus.subscribe(
                    topics.SIGNAL_CONFIGS_CHANGED, f"signal-config-cache-{uuid.uuid4().hex[:8]}", self._on_change,
                    ephemeral=True)

    async def _on_change(self, msg: Message[topics.SignalConfigChanged]) -> None:
        self.cache.forget(msg.data.config_id)

    async def stop_following(self) -> None:
        """Stop following changes (the API's lifespan ends it on the loop that started it; the next webhook request
        would start it again)."""
        async with self._following:
            if self._changes is not None:
                await self._changes.close()
                self._changes = None
            self.cache = ConfigCache(self.clock)  # unfollowed entries can't be trusted

    async def close(self) -> None:
        await self.stop_following()

    # --- configs (administrators) -------------------------------------------------------------------------------

    async def create_config(self, *, symbol: str, timeframe: str, strategy: str, params: dict[str, Any],
                            computed: bool, active: bool = True) -> SignalConfigRow:
        now = self.clock.now_ms()
        token = new_token()
        row = SignalConfigRow(id=str(uuid.uuid4()), symbol=symbol, timeframe=timeframe, strategy=strategy,
                              params=params, params_key=params_key(params), token=token,
                              token_hash=token_hash(token), active=active, computed=computed, duplicates=0,
                              created_at_ms=now, updated_at_ms=now)
        async with self.sessions() as s:
            await self._check_unique(s, row, exclude=None)
            s.add(row)
            await s.commit()
        await self._announce(row.id)
        return row

    async def _check_unique(self, s: AsyncSession, row: SignalConfigRow, exclude: str | None) -> None:
        query = select(SignalConfigRow.id).where(
            SignalConfigRow.symbol == row.symbol, SignalConfigRow.timeframe == row.timeframe,
            SignalConfigRow.strategy == row.strategy, SignalConfigRow.params_key == row.params_key)
        if exclude is not None:
            query = query.where(SignalConfigRow.id != exclude)
        if (existing := await s.scalar(query)) is not None:
            raise DuplicateConfig(existing)

    async def list_configs(self, *, active_only: bool = False) -> list[SignalConfigRow]:
        query = select(SignalConfigRow).order_by(SignalConfigRow.created_at_ms, SignalConfigRow.id)
        if active_only:
            query = query.where(SignalConfigRow.active.is_(True))
        async with self.sessions() as s:
            return list(await s.scalars(query))

    async def config(self, config_id: str) -> SignalConfigRow:
        async with self.sessions() as s:
            row = await s.get(SignalConfigRow, config_id)
        if row is None:
            raise NotFound(config_id)
        return row

    async def update_config(self, config_id: str, changes: dict[str, Any]) -> SignalConfigRow:
        """`changes`: any of symbol, timeframe, strategy, params (validated by the caller), active, computed."""
        async with self.sessions() as s:
            row = await s.get(SignalConfigRow, config_id)
            if row is None:
                raise NotFound(config_id)
            for key, value in changes.items():
                setattr(row, key, value)
            row.params_key = params_key(row.params)
            row.updated_at_ms = self.clock.now_ms()
            await self._check_unique(s, row, exclude=config_id)
            await s.commit()
        self.cache.forget(config_id)
        await self._announce(config_id)
        return row

    async def rotate_token(self, config_id: str) -> SignalConfigRow:
        """A new secret; the old one stops working at once (a leaked webhook URL is dead after this)."""
        token = new_token()
        return await self.update_config(config_id, {"token": token, "token_hash": token_hash(token)})

    async def delete_config(self, config_id: str) -> None:
        async with self.sessions() as s, s.begin():
            row = await s.get(SignalConfigRow, config_id)
            if row is None:
                raise NotFound(config_id)
            await s.delete(row)
            subs = await s.scalars(select(SignalSubscriptionRow).where(SignalSubscriptionRow.config_id == config_id))
            for sub in subs:
                await s.delete(sub)
        self.cache.forget(config_id)
        await self._announce(config_id)

    async def _announce(self, config_id: str) -> None:
        await self.bus.publish(topics.SIGNAL_CONFIGS_CHANGED, topics.SignalConfigChanged(config_id))

    # --- the webhook ------------------------------------------------------------------------------------------

    async def config_for_token(self, token: str, body_secret: str | None) -> SignalConfigRow | None:
        """The active config the request authenticates as: the path's token (found by its hash, so the lookup's
        timing says nothing about the secret), or the config id in the path with the token as the body's
        `secret` (compared in constant time). Found configs come from the cache while it holds them."""
        if self._changes is None:
            await self.follow_changes()
        digest = token_hash(token)
        row = self.cache.get(f"hash:{digest}")
        if row is None and body_secret is not None and len(token) <= 36:
            by_id = self.cache.get(f"id:{token}")
            if by_id is not None and secrets.compare_digest(token_hash(body_secret), by_id.token_hash):
                row = by_id
        if row is None:
            async with self.gate.slot(), self.sessions() as s:
                row = await s.scalar(select(SignalConfigRow).where(SignalConfigRow.token_hash == digest))
                if row is None and body_secret is not None and len(token) <= 36:
                    by_id = await s.get(SignalConfigRow, token)
                    if by_id is not None and secrets.compare_digest(token_hash(body_secret), by_id.token_hash):
                        row = by_id
            if row is not None:
                self.cache.put(row)
        return row if row is not None and row.active else None

    async def flooded(self, config_id: str) -> bool:
        """True past `PULSE_WEBHOOK_RATE_PER_MINUTE` requests for one config in the last minute (a moving window)."""
        item = RateLimitItemPerMinute(self.settings.webhook_rate_per_minute)
        async with self.gate.slot():  # the Redis counters' connection pool is bounded too
            return not await self._flood.hit(item, "webhook", config_id)

    async def ingest(self, config: SignalConfigRow, signal: Accepted, *, payload: dict[str, Any],
                     raw: str | None, source: str) -> Ingested:
        """The durable write the acknowledgement waits for. Stale signals are stored as such (never delivered)."""
        now = self.clock.now_ms()
        sid = str(uuid.uuid4())
        values = dict(id=sid, config_id=config.id, source=source, action=signal.action, symbol=signal.symbol,
                      timeframe=signal.interval.value, price=signal.price, bar_time_ms=signal.bar_time,
                      dedupe_key=signal.dedupe_key, status="stale" if signal.stale else "received",
                      payload=payload, raw=raw[:RAW_CHARS] if raw is not None else None, received_at_ms=now,
                      users_notified=0, deliveries=0)
        async with self.gate.slot():  # the store's pool, then the bus's connections: both bounded
            async with self.sessions() as s, s.begin():
                insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
                result = await s.execute(insert(SignalHistoryRow).values(**values)
                                         .on_conflict_do_nothing(index_elements=["config_id", "dedupe_key"]))
                if not getattr(result, "rowcount", 0):
                    await s.execute(update(SignalConfigRow).where(SignalConfigRow.id == config.id)
                                    .values(duplicates=SignalConfigRow.duplicates + 1))
                    return Ingested("duplicate", None)
            if signal.stale:
                return Ingested("stale", sid)
            await self.bus.publish(topics.SIGNALS_RECEIVED, topics.SignalReceived(sid, config.id))
        return Ingested("accepted", sid)

    async def reject(self, *, config_id: str, status_code: int, field: str, reason: str,
                     content_type: str | None, raw: bytes, client: str | None) -> None:
        """Keep a refused payload for an administrator's review (raw body as text, cut to RAW_CHARS)."""
        row = SignalRejectRow(config_id=config_id, status_code=status_code, field=field[:40], reason=reason[:300],
                              content_type=(content_type or "")[:100] or None,
                              raw=raw[:RAW_CHARS].decode("utf-8", "replace").replace("\x00", "\ufffd"),
                              client=(client or "")[:64] or None, received_at_ms=self.clock.now_ms())
        async with self.gate.slot(), self.sessions() as s:
            s.add(row)
            await s.commit()

    async def rejects(self, *, config_id: str | None, limit: int, offset: int) -> tuple[list[SignalRejectRow], int]:
        where = [SignalRejectRow.config_id == config_id] if config_id else []
        async with self.sessions() as s:
            total = await s.scalar(select(func.count()).select_from(SignalRejectRow).where(*where)) or 0
            rows = await s.scalars(select(SignalRejectRow).where(*where).order_by(SignalRejectRow.id.desc())
                                   .limit(limit).offset(offset))
            return list(rows), total

    # --- the worker -----------------------------------------------------------------------------------------------

    async def pending(self, limit: int = 500) -> list[str]:
        """Signals waiting for processing, oldest first (a restarted worker finds what its predecessor left)."""
        async with self.sessions() as s:
            rows = await s.scalars(select(SignalHistoryRow.id).where(SignalHistoryRow.status == "received")
                                   .order_by(SignalHistoryRow.received_at_ms, SignalHistoryRow.id).limit(limit))
            return list(rows)

    async def process(self, signal_id: str) -> bool:
        """Queue the signal's notifications for every active subscriber, in the transaction that marks it
        processed; False when another worker took it first (or it is not waiting)."""
        now = self.clock.now_ms()
        async with self.sessions() as s, s.begin():
            claimed = await s.execute(update(SignalHistoryRow).where(
                SignalHistoryRow.id == signal_id, SignalHistoryRow.status == "received").values(
                status="processed", processed_at_ms=now))
            if not getattr(claimed, "rowcount", 0):
                return False
            signal = await s.get(SignalHistoryRow, signal_id)
            assert signal is not None
            config = await s.get(SignalConfigRow, signal.config_id)
            subs = await s.scalars(select(SignalSubscriptionRow).where(
                SignalSubscriptionRow.config_id == signal.config_id, SignalSubscriptionRow.active.is_(True)))
            users = deliveries = 0
            message = notification(signal, config)
            for sub in subs:
                before = await _outbox_count(s, signal_id)
                await enqueue(s, owner_id=sub.owner_id, rule_id=None, event_key=f"{EVENT_PREFIX}{signal_id}",
                              destination_ids=list(sub.channels), message=message, source="signal", now_ms=now)
                added = await _outbox_count(s, signal_id) - before
                users += added > 0
                deliveries += added
            signal.users_notified, signal.deliveries = users, deliveries
        SIGNALS_PROCESSED.labels(signal.source).inc()
        SIGNAL_LATENCY_SECONDS.observe(max(0, now - signal.received_at_ms) / 1000)
        return True

    # --- subscriptions (users) ------------------------------------------------------------------------------------

    async def subscribe(self, user_id: str, plan: str, config_id: str, channels: list[str]) -> SignalSubscriptionRow:
        now = self.clock.now_ms()
        async with self.sessions() as s:
            config = await s.get(SignalConfigRow, config_id)
            if config is None or not config.active:
                raise NotFound(config_id)
            await _check_channels(s, user_id, plan, channels)
            limit = plan_named(plan).signal_subscriptions
            count = await s.scalar(select(func.count()).select_from(SignalSubscriptionRow).where(
                SignalSubscriptionRow.owner_id == user_id)) or 0
            if limit is not None and count >= limit:
                raise PlanLimit(plan_named(plan).name, limit)
            row = SignalSubscriptionRow(id=str(uuid.uuid4()), owner_id=user_id, config_id=config_id,
                                        channels=list(dict.fromkeys(channels)), active=True, created_at_ms=now,
                                        updated_at_ms=now)
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                raise DuplicateConfig(config_id) from None  # already subscribed: the views answer 409
        return row

    async def subscriptions(self, user_id: str) -> list[SignalSubscriptionRow]:
        async with self.sessions() as s:
            return list(await s.scalars(select(SignalSubscriptionRow).where(SignalSubscriptionRow.owner_id == user_id)
                                        .order_by(SignalSubscriptionRow.created_at_ms, SignalSubscriptionRow.id)))

    async def update_subscription(self, user_id: str, plan: str, sub_id: str, *, channels: list[str] | None,
                                  active: bool | None) -> SignalSubscriptionRow:
        async with self.sessions() as s:
            row = await _owned(s, user_id, sub_id)
            if channels is not None:
                await _check_channels(s, user_id, plan, channels)
                row.channels = list(dict.fromkeys(channels))
            if active is not None:
                row.active = active
            row.updated_at_ms = self.clock.now_ms()
            await s.commit()
            return row

    async def unsubscribe(self, user_id: str, sub_id: str) -> None:
        async with self.sessions() as s:
            await s.delete(await _owned(s, user_id, sub_id))
            await s.commit()

    async def history(self, user_id: str, *, config_id: str | None, limit: int,
                      offset: int) -> list[SignalHistoryRow]:
        """Signals of the configs the user subscribes to, newest first (stale ones included, marked)."""
        subscribed = select(SignalSubscriptionRow.config_id).where(SignalSubscriptionRow.owner_id == user_id)
        query = select(SignalHistoryRow).where(SignalHistoryRow.config_id.in_(subscribed),
                                               SignalHistoryRow.status != "received")
        if config_id is not None:
            query = query.where(SignalHistoryRow.config_id == config_id)
        query = query.order_by(SignalHistoryRow.bar_time_ms.desc(), SignalHistoryRow.id).limit(limit).offset(offset)
        async with self.sessions() as s:
            return list(await s.scalars(query))

    async def recent(self, config_id: str, limit: int = 20) -> list[SignalHistoryRow]:
        async with self.sessions() as s:
            return list(await s.scalars(select(SignalHistoryRow).where(SignalHistoryRow.config_id == config_id)
                                        .order_by(SignalHistoryRow.bar_time_ms.desc()).limit(limit)))

    # --- figures --------------------------------------------------------------------------------------------------

    async def stats(self, config_id: str) -> ConfigStats:
        async with self.sessions() as s:
            config = await s.get(SignalConfigRow, config_id)
            if config is None:
                raise NotFound(config_id)
            by_status: dict[str, int] = {row[0]: row[1] for row in (await s.execute(
                select(SignalHistoryRow.status, func.count()).where(SignalHistoryRow.config_id == config_id)
                .group_by(SignalHistoryRow.status))).all()}
            sums = (await s.execute(select(func.coalesce(func.sum(SignalHistoryRow.users_notified), 0),
                                           func.coalesce(func.sum(SignalHistoryRow.deliveries), 0)).where(
                SignalHistoryRow.config_id == config_id))).one()
            processing = [r.processed_at_ms - r.received_at_ms for r in (await s.execute(
                select(SignalHistoryRow.received_at_ms, SignalHistoryRow.processed_at_ms).where(
                    SignalHistoryRow.config_id == config_id, SignalHistoryRow.processed_at_ms.is_not(None))
                .order_by(SignalHistoryRow.received_at_ms.desc()).limit(1000))).all()]
            event_of_signal = NotificationRow.event_key == literal(EVENT_PREFIX, String) + SignalHistoryRow.id
            outbox = (await s.execute(select(NotificationRow.status, NotificationRow.sent_at_ms,
                                             SignalHistoryRow.received_at_ms).join(SignalHistoryRow, event_of_signal)
                                      .where(SignalHistoryRow.config_id == config_id))).all()
            rejected = await s.scalar(select(func.count()).select_from(SignalRejectRow).where(
                SignalRejectRow.config_id == config_id)) or 0
        delivered = [r.sent_at_ms - r.received_at_ms for r in outbox if r.sent_at_ms is not None]
        return ConfigStats(
            signals_received=sum(by_status.values()), stale=by_status.get("stale", 0), duplicates=config.duplicates,
            pending=by_status.get("received", 0), users_notified=int(sums[0]), deliveries=int(sums[1]),
            deliveries_failed=sum(1 for r in outbox if r.status in ("failed", "dead")),
            median_processing_ms=_median(processing), median_delivery_ms=_median(delivered), rejected=rejected)

    async def backtest(self, config_id: str, end_ms: int) -> dict[str, Any]:
        """The config's strategy over the last year of candles before `end_ms` (the backtest engine, long on a buy,
        flat on a sell): trades, win rate, return. NoCandles when there are none."""
        import asyncio

        config = await self.config(config_id)
        return await asyncio.to_thread(_backtest, config, end_ms, self.settings.data_dir / "library")

    async def queue(self) -> dict[str, int]:
        """Signals waiting for the worker, and those processed in the last minute (the live rate)."""
        now = self.clock.now_ms()
        async with self.sessions() as s:
            waiting = await s.scalar(select(func.count()).select_from(SignalHistoryRow).where(
                SignalHistoryRow.status == "received")) or 0
            recent = await s.scalar(select(func.count()).select_from(SignalHistoryRow).where(
                SignalHistoryRow.processed_at_ms >= now - 60_000)) or 0
        return {"depth": waiting, "processed_last_minute": recent}


YEAR_MS = 365 * 86_400_000


def _backtest(config: SignalConfigRow, end_ms: int, library: Any) -> dict[str, Any]:
    import math

    import numpy as np

    from marketpulse.backtest.candles import CandleQuery, load_candles
    from marketpulse.backtest.engine import Backtest
    from marketpulse.marketdata.intervals import Interval
    from marketpulse.signals.live import strategy_actions
    from marketpulse.strategies import Signals

    loaded = load_candles(CandleQuery(config.symbol, Interval.parse(config.timeframe), start=end_ms - YEAR_MS,
                                      end=end_ms), library)
    buy, sell = strategy_actions(config.strategy, dict(config.params), loaded.frame)
    none = np.zeros(len(buy), dtype=np.bool_)
    result = Backtest(loaded.frame, Signals(long_entries=buy, long_exits=sell, short_entries=none,
                                            short_exits=none.copy())).run()
    stats = result.stats
    return {"trades": stats.trades, "win_rate": None if math.isnan(stats.win_rate) else stats.win_rate,
            "total_return": stats.total_return, "start": int(loaded.frame.time[0]),
            "end": int(loaded.frame.time[-1]), "bars": len(loaded.frame), "source": loaded.source}


def notification(signal: SignalHistoryRow, config: SignalConfigRow | None) -> dict[str, Any]:
    strategy = config.strategy if config else "signal"
    price = f" at {signal.price:.8g}" if signal.price is not None else ""
    return {"title": f"{strategy} {signal.action.upper()} {signal.symbol} {signal.timeframe}",
            "text": f"{strategy}: {signal.action} {signal.symbol} ({signal.timeframe}){price}",
            "symbol": signal.symbol, "time": signal.bar_time_ms, "action": signal.action, "price": signal.price,
            "config_id": signal.config_id, "signal_id": signal.id, "source": signal.source}


async def _outbox_count(s: AsyncSession, signal_id: str) -> int:
    return await s.scalar(select(func.count()).select_from(NotificationRow).where(
        NotificationRow.event_key == f"{EVENT_PREFIX}{signal_id}")) or 0


async def _owned(s: AsyncSession, user_id: str, sub_id: str) -> SignalSubscriptionRow:
    row = await s.scalar(select(SignalSubscriptionRow).where(SignalSubscriptionRow.id == sub_id,
                                                             SignalSubscriptionRow.owner_id == user_id))
    if row is None:
        raise NotFound(sub_id)
    return row


async def _check_channels(s: AsyncSession, user_id: str, plan: str, channels: Sequence[str]) -> None:
    rows = await s.execute(select(DestinationRow.id, DestinationRow.channel).where(
        DestinationRow.id.in_(list(channels)), DestinationRow.owner_id == user_id))
    kinds = {r.id: r.channel for r in rows}
    allowed = plan_named(plan).alert_channels
    errors = []
    for i, channel in enumerate(channels):
        kind = kinds.get(channel)
        if kind is None:
            errors.append({"loc": ("body", "channels", i), "msg": "no such destination of yours: add one in your "
                           "account's destinations first", "type": "value_error", "input": channel})
        elif not channel_allowed(kind, allowed):
            errors.append({"loc": ("body", "channels", i), "msg": f"the {plan} plan does not deliver by {kind}",
                           "type": "value_error", "input": channel})
    if errors:
        raise BadChannels(errors)


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
