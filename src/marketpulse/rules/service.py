"""Alert rules in the store: the owner's CRUD with plan limits, the match history, and the worker's writes.

Every query is scoped by owner (another owner's rule is not found). Each change bumps the rule's version and is
announced on `rules.changed`, after its commit, so every worker's engine reloads it; a worker that starts rebuilds
from `active_rules`. A match is written by `record`: its `alert_history` row (unique per rule and triggering
event, so a redelivered update stores and notifies nothing new) and, in the same transaction, one delivery outbox
row per channel (`delivery.outbox.enqueue`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import plan_named
from marketpulse.bus import EventBus, topics
from marketpulse.clock import Clock
from marketpulse.delivery.core import channel_allowed
from marketpulse.delivery.outbox import enqueue
from marketpulse.delivery.tables import DestinationRow
from marketpulse.rules.engine import Match, StateChange
from marketpulse.rules.model import RuleIn, bad_field
from marketpulse.rules.tables import AlertHistoryRow, AlertRuleRow, AlertRuleStateRow
from marketpulse.watchlists.tables import WatchlistItemRow, WatchlistRow


class RuleNotFound(LookupError):
    pass


@dataclass(frozen=True)
class PlanLimit(Exception):
    """The owner's plan allows no more active rules."""

    plan: str
    limit: int

    def detail(self) -> dict[str, Any]:
        return {"reason": "active_alert_rules", "plan": self.plan, "limit": self.limit,
                "message": f"the {self.plan} plan allows {self.limit} active alert rules: pause or delete one, or "
                           "upgrade"}


class BadTargets(ValueError):
    """Channels or a watchlist that are not the owner's (or not on the plan): the 422 errors, one per field."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("bad channels or watchlist")
        self.errors = errors


class RulesService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], bus: EventBus, clock: Clock) -> None:
        self.sessions = sessions
        self.bus = bus
        self.clock = clock

    # --- the owner's rules ---------------------------------------------------------------------------------------

    async def create(self, owner_id: str, plan: str, body: RuleIn) -> AlertRuleRow:
        now = self.clock.now_ms()
        async with self.sessions() as s:
            await self._check(s, owner_id, plan, body, exclude=None)
            row = AlertRuleRow(id=str(uuid.uuid4()), owner_id=owner_id, name=body.name, spec=body.to_json(),
                               enabled=body.enabled, version=1, fired_count=0, created_at_ms=now, updated_at_ms=now)
            s.add(row)
            await s.commit()
        await self._announce(row)
        return row

    async def list_rules(self, owner_id: str) -> list[AlertRuleRow]:
        async with self.sessions() as s:
            rows = await s.scalars(select(AlertRuleRow).where(AlertRuleRow.owner_id == owner_id)
                                   .order_by(AlertRuleRow.created_at_ms, AlertRuleRow.id))
            return list(rows)

    async def get(self, owner_id: str, rule_id: str) -> AlertRuleRow:
        async with self.sessions() as s:
            return await self._owned(s, owner_id, rule_id)

    async def replace(self, owner_id: str, plan: str, rule_id: str, body: RuleIn) -> AlertRuleRow:
        async with self.sessions() as s:
            row = await self._owned(s, owner_id, rule_id)
            await self._check(s, owner_id, plan, body, exclude=rule_id)
            row.name, row.spec, row.enabled = body.name, body.to_json(), body.enabled
            self._bump(row)
            await s.commit()
        await self._announce(row)
        return row

    async def set_enabled(self, owner_id: str, plan: str, rule_id: str, enabled: bool) -> AlertRuleRow:
        """Pause (False) or resume (True); resuming counts against the plan's active rules."""
        async with self.sessions() as s:
            row = await self._owned(s, owner_id, rule_id)
            if enabled and not row.enabled:
                await self._check_active(s, owner_id, plan, exclude=rule_id)
            row.enabled = enabled
            row.spec = {**row.spec, "enabled": enabled}
            self._bump(row)
            await s.commit()
        await self._announce(row)
        return row

    async def delete(self, owner_id: str, rule_id: str) -> None:
        async with self.sessions() as s:
            row = await self._owned(s, owner_id, rule_id)
            await s.delete(row)
            await s.execute(delete(AlertRuleStateRow).where(AlertRuleStateRow.rule_id == rule_id))
            await s.commit()
        await self.bus.publish(topics.RULES_CHANGED, topics.RulesChanged(rule_id, owner_id, row.version + 1,
                                                                         deleted=True))

    async def history(self, owner_id: str, *, rule_id: str | None = None, limit: int = 100,
                      before_ms: int | None = None) -> list[AlertHistoryRow]:
        query = select(AlertHistoryRow).where(AlertHistoryRow.owner_id == owner_id)
        if rule_id is not None:
            query = query.where(AlertHistoryRow.rule_id == rule_id)
        if before_ms is not None:
            query = query.where(AlertHistoryRow.time_ms < before_ms)
        query = query.order_by(AlertHistoryRow.time_ms.desc(), AlertHistoryRow.id).limit(limit)
        async with self.sessions() as s:
            return list(await s.scalars(query))

    async def channel_kinds(self, owner_id: str, channel_ids: Sequence[str]) -> dict[str, str]:
        """The channel (email, telegram, …) of each of the owner's destinations named."""
        if not channel_ids:
            return {}
        async with self.sessions() as s:
            return await _channel_kinds(s, owner_id, channel_ids)

    # --- checks ---------------------------------------------------------------------------------------------------

    async def _owned(self, s: AsyncSession, owner_id: str, rule_id: str) -> AlertRuleRow:
        row = await s.scalar(select(AlertRuleRow).where(AlertRuleRow.id == rule_id,
                                                        AlertRuleRow.owner_id == owner_id))
        if row is None:
            raise RuleNotFound(rule_id)
        return row

    async def _check(self, s: AsyncSession, owner_id: str, plan: str, body: RuleIn, exclude: str | None) -> None:
        kinds = await _channel_kinds(s, owner_id, body.channels)
        plan_channels = plan_named(plan).alert_channels
        errors = []
        for i, channel in enumerate(body.channels):
            kind = kinds.get(channel)
            if kind is None:
                errors.append(bad_field(("channels", i), "no such destination of yours: add one in your account's "
                                                         "destinations first", channel))
            elif not channel_allowed(kind, plan_channels):
                errors.append(bad_field(("channels", i), f"the {plan} plan does not deliver by {kind} (it has "
                                                         f"{', '.join(plan_channels)}, in_app and push)", channel))
        if body.watchlist is not None and await _watchlist_symbols(s, owner_id, body.watchlist) is None:
            errors.append(bad_field(("watchlist",), "no such watchlist of yours (see /api/v1/watchlist)",
                                    body.watchlist))
        if errors:
            raise BadTargets(errors)
        if body.enabled:
            await self._check_active(s, owner_id, plan, exclude=exclude)

    async def _check_active(self, s: AsyncSession, owner_id: str, plan: str, exclude: str | None) -> None:
        limit = plan_named(plan).active_alert_rules
        if limit is None:
            return
        query = select(func.count()).select_from(AlertRuleRow).where(AlertRuleRow.owner_id == owner_id,
                                                                     AlertRuleRow.enabled.is_(True))
        if exclude is not None:
            query = query.where(AlertRuleRow.id != exclude)
        if (await s.scalar(query) or 0) >= limit:
            raise PlanLimit(plan_named(plan).name, limit)

    def _bump(self, row: AlertRuleRow) -> None:
        row.version += 1
        row.updated_at_ms = self.clock.now_ms()

    async def _announce(self, row: AlertRuleRow) -> None:
        await self.bus.publish(topics.RULES_CHANGED, topics.RulesChanged(row.id, row.owner_id, row.version))

    # --- the worker's side ---------------------------------------------------------------------------------------

    async def active_rules(self) -> list[AlertRuleRow]:
        async with self.sessions() as s:
            return list(await s.scalars(select(AlertRuleRow).where(AlertRuleRow.enabled.is_(True))))

    async def rule(self, rule_id: str) -> AlertRuleRow | None:
        async with self.sessions() as s:
            return await s.get(AlertRuleRow, rule_id)

    async def watchlist_symbols(self, owner_id: str, watchlist_id: str) -> list[str]:
        """The symbols of the owner's watchlist now (none when it is gone): what a watchlist rule watches."""
        async with self.sessions() as s:
            return await _watchlist_symbols(s, owner_id, watchlist_id) or []

    async def rule_states(self, rule_ids: Sequence[str] | None = None) -> list[AlertRuleStateRow]:
        """The stored trigger states (of `rule_ids`, else every one); the caller keeps those of the rule versions
        it holds."""
        query = select(AlertRuleStateRow)
        if rule_ids is not None:
            query = query.where(AlertRuleStateRow.rule_id.in_(list(rule_ids)))
        async with self.sessions() as s:
            return list(await s.scalars(query))

    async def record(self, matches: Sequence[tuple[Match, AlertRuleRow, str]],
                     states: Sequence[tuple[StateChange, int]] = ()) -> list[Match]:
        """Store matches (each with its rule and message) and their outbox rows, and the trigger states the same
        updates left (each with its rule's version), in one transaction; the matches that were new (a repeated
        (rule, event) stores and notifies nothing)."""
        now = self.clock.now_ms()
        fresh: list[Match] = []
        async with self.sessions() as s, s.begin():
            await _upsert_states(s, states)
            for match, rule, message in matches:
                if not await _insert_history(s, match, rule, message, now):
                    continue
                fresh.append(match)
                await enqueue(s, owner_id=match.owner_id, rule_id=match.rule_id, event_key=match.event_key,
                              destination_ids=list(rule.spec.get("channels", [])), now_ms=now,
                              message={"title": rule.name, "text": message, "symbol": match.symbol,
                                       "time": match.time_ms, "field": match.key, "value": match.value,
                                       "priority": rule.spec.get("priority", "normal")})
                values: dict[str, Any] = {"fired_count": AlertRuleRow.fired_count + 1,
                                          "last_fired_at_ms": match.time_ms}
                if match.disables:
                    values |= {"enabled": False, "version": AlertRuleRow.version + 1}
                await s.execute(update(AlertRuleRow).where(AlertRuleRow.id == match.rule_id).values(**values))
        return fresh


async def _channel_kinds(s: AsyncSession, owner_id: str, channel_ids: Sequence[str]) -> dict[str, str]:
    if not channel_ids:
        return {}
    rows = await s.execute(select(DestinationRow.id, DestinationRow.channel).where(
        DestinationRow.id.in_(list(channel_ids)), DestinationRow.owner_id == owner_id))
    return {r.id: r.channel for r in rows}


async def _watchlist_symbols(s: AsyncSession, owner_id: str, watchlist_id: str) -> list[str] | None:
    found = await s.scalar(select(WatchlistRow.id).where(WatchlistRow.id == watchlist_id,
                                                         WatchlistRow.owner_id == owner_id))
    if found is None:
        return None
    rows = await s.scalars(select(WatchlistItemRow.symbol).where(WatchlistItemRow.watchlist_id == watchlist_id)
                           .order_by(WatchlistItemRow.position))
    return list(rows)


STATE_CHUNK = 500  # rows per INSERT … ON CONFLICT statement


async def _upsert_states(s: AsyncSession, states: Sequence[tuple[StateChange, int]]) -> None:
    """Each (rule, symbol)'s state, unless a newer one is stored: a newer rule version, or the same version's state
    as of a later market time (another worker ahead of this one wrote it)."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows = [{"rule_id": c.rule_id, "symbol": c.symbol, "owner_id": c.owner_id, "rule_version": version,
             "armed": c.armed, "last_fired_ms": c.last_fired_ms, "as_of_ms": c.as_of_ms} for c, version in states]
    stored = AlertRuleStateRow
    for i in range(0, len(rows), STATE_CHUNK):
        stmt = insert(stored).values(rows[i:i + STATE_CHUNK])
        new = stmt.excluded
        await s.execute(stmt.on_conflict_do_update(
            index_elements=["rule_id", "symbol"],
            set_={"rule_version": new.rule_version, "armed": new.armed, "last_fired_ms": new.last_fired_ms,
                  "as_of_ms": new.as_of_ms, "owner_id": new.owner_id},
            where=or_(stored.rule_version < new.rule_version,
                      (stored.rule_version == new.rule_version) & (stored.as_of_ms <= new.as_of_ms))))


async def _insert_history(s: AsyncSession, match: Match, rule: AlertRuleRow, message: str, now: int) -> bool:
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(AlertHistoryRow).values(
        id=str(uuid.uuid4()), owner_id=match.owner_id, rule_id=match.rule_id, rule_name=rule.name,
        event_key=match.event_key, symbol=match.symbol, field=match.key, value=match.value, message=message[:500],
        channels=list(rule.spec.get("channels", [])), time_ms=match.time_ms, created_at_ms=now,
    ).on_conflict_do_nothing(index_elements=["rule_id", "event_key"])
    result = await s.execute(stmt)
    return bool(getattr(result, "rowcount", 0))
