"""Watchlists and volume-alert subscriptions in the database. Every method takes the owner and filters by it, so
another user's id is simply not found; plan limits are checked (by `core`) before anything is written. A change to
a watchlist's symbols (or its deletion) is announced on `watchlists.changed` after its commit, so alert rules on
the watchlist follow it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import Plan
from marketpulse.bus import EventBus, topics
from marketpulse.clock import Clock
from marketpulse.watchlists import core
from marketpulse.watchlists.tables import VolumeAlertSubscriptionRow, WatchlistItemRow, WatchlistRow


class NotFound(Exception):
    pass


class NameTaken(Exception):
    pass


@dataclass(frozen=True)
class Watchlist:
    id: str
    name: str
    symbols: list[str]
    created_at_ms: int
    updated_at_ms: int


class WatchlistService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, bus: EventBus | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.bus = bus

    async def _announce(self, owner: str, list_id: str, deleted: bool = False) -> None:
        if self.bus is not None:
            await self.bus.publish(topics.WATCHLISTS_CHANGED, topics.WatchlistChanged(list_id, owner, deleted))

    # ---- watchlists ---------------------------------------------------------------------------------------------

    async def lists(self, owner: str) -> list[Watchlist]:
        async with self.sessions() as s:
            rows = (await s.execute(select(WatchlistRow).where(WatchlistRow.owner_id == owner)
                                    .order_by(WatchlistRow.created_at_ms, WatchlistRow.name))).scalars().all()
            items = (await s.execute(select(WatchlistItemRow.watchlist_id, WatchlistItemRow.symbol)
                                     .where(WatchlistItemRow.owner_id == owner)
                                     .order_by(WatchlistItemRow.position))).all()
        by_list: dict[str, list[str]] = {}
        for list_id, symbol in items:
            by_list.setdefault(list_id, []).append(symbol)
        return [_watchlist(r, by_list.get(r.id, [])) for r in rows]

    async def get(self, owner: str, list_id: str) -> Watchlist:
        async with self.sessions() as s:
            return await self._load(s, owner, list_id)

    async def create(self, owner: str, plan: Plan, name: str, symbols: Sequence[str]) -> Watchlist:
        symbols = core.unique(symbols)
        core.check_symbol_count(plan, len(symbols))
        now = self.clock.now_ms()
        async with self.sessions() as s:
            existing = (await s.execute(select(func.count()).select_from(WatchlistRow)
                                        .where(WatchlistRow.owner_id == owner))).scalar_one()
            core.check_new_watchlist(plan, int(existing))
            row = WatchlistRow(id=str(uuid.uuid4()), owner_id=owner, name=name, created_at_ms=now, updated_at_ms=now)
            s.add(row)
            try:
                await s.flush()  # the list before its items: the tables have no ORM relationship to order them
            except IntegrityError:
                raise NameTaken from None
            s.add_all(_items(row.id, owner, symbols, 0, now))
            await _commit(s)
            return _watchlist(row, symbols)

    async def update(self, owner: str, plan: Plan, list_id: str, name: str | None,
                     symbols: Sequence[str] | None) -> Watchlist:
        """Rename, and/or replace the symbols with `symbols`."""
        async with self.sessions() as s:
            row = await self._row(s, owner, list_id)
            now = self.clock.now_ms()
            if name is not None:
                row.name = name
            if symbols is not None:
                symbols = core.unique(symbols)
                core.check_symbol_count(plan, len(symbols))
                await s.execute(delete(WatchlistItemRow).where(WatchlistItemRow.watchlist_id == row.id))
                s.add_all(_items(row.id, owner, symbols, 0, now))
            row.updated_at_ms = now
            await _commit(s)
            changed = await self._load(s, owner, list_id)
        if symbols is not None:
            await self._announce(owner, list_id)
        return changed

    async def delete(self, owner: str, list_id: str) -> None:
        async with self.sessions() as s:
            await s.delete(await self._row(s, owner, list_id))  # its items go with it (FK cascade)
            await s.commit()
        await self._announce(owner, list_id, deleted=True)

    async def add(self, owner: str, plan: Plan, list_id: str, symbols: Sequence[str], field: str) -> Watchlist:
        """Add the symbols not there yet (at the end, in the order given); those already there stay where they are."""
        async with self.sessions() as s:
            row = await self._row(s, owner, list_id)
            have = await self._symbols(s, row.id)
            new = [sym for sym in core.unique(symbols) if sym not in have]
            core.check_symbol_count(plan, len(have) + len(new), field)
            if new:
                now = self.clock.now_ms()
                top = (await s.execute(select(func.max(WatchlistItemRow.position))
                                       .where(WatchlistItemRow.watchlist_id == row.id))).scalar_one()
                s.add_all(_items(row.id, owner, new, (top or 0) + 1, now))
                row.updated_at_ms = now
                await _commit(s)
            changed = await self._load(s, owner, list_id)
        if new:
            await self._announce(owner, list_id)
        return changed

    async def remove(self, owner: str, list_id: str, symbols: Sequence[str]) -> Watchlist:
        """Remove the symbols; one that isn't there is already gone (so a repeated DELETE answers the same)."""
        async with self.sessions() as s:
            row = await self._row(s, owner, list_id)
            gone = await s.execute(delete(WatchlistItemRow).where(WatchlistItemRow.watchlist_id == row.id,
                                                                  WatchlistItemRow.symbol.in_(list(symbols))))
            if gone.rowcount:  # type: ignore[attr-defined]
                row.updated_at_ms = self.clock.now_ms()
            await s.commit()
            changed = await self._load(s, owner, list_id)
        if gone.rowcount:  # type: ignore[attr-defined]
            await self._announce(owner, list_id)
        return changed

    async def _row(self, s: AsyncSession, owner: str, list_id: str) -> WatchlistRow:
        row = (await s.execute(select(WatchlistRow).where(WatchlistRow.id == list_id,
                                                          WatchlistRow.owner_id == owner))).scalar_one_or_none()
        if row is None:
            raise NotFound(list_id)
        return row

    async def _symbols(self, s: AsyncSession, list_id: str) -> list[str]:
        stmt = (select(WatchlistItemRow.symbol).where(WatchlistItemRow.watchlist_id == list_id)
                .order_by(WatchlistItemRow.position))
        return list((await s.execute(stmt)).scalars())

    async def _load(self, s: AsyncSession, owner: str, list_id: str) -> Watchlist:
        row = await self._row(s, owner, list_id)
        return _watchlist(row, await self._symbols(s, row.id))

    # ---- volume-alert subscriptions ----------------------------------------------------------------------------

    async def subscriptions(self, owner: str) -> list[VolumeAlertSubscriptionRow]:
        """By symbol (`*` first)."""
        async with self.sessions() as s:
            stmt = (select(VolumeAlertSubscriptionRow).where(VolumeAlertSubscriptionRow.owner_id == owner)
                    .order_by(VolumeAlertSubscriptionRow.symbol))
            return list((await s.execute(stmt)).scalars())

    async def subscribe(self, owner: str, plan: Plan, symbol: str) -> tuple[VolumeAlertSubscriptionRow, bool]:
        """The subscription, and whether it is new (subscribing twice to one symbol answers the first one)."""
        core.check_subscriptions_allowed(plan)
        async with self.sessions() as s:
            mine = (await s.execute(select(VolumeAlertSubscriptionRow)
                                    .where(VolumeAlertSubscriptionRow.owner_id == owner))).scalars().all()
            same = next((r for r in mine if r.symbol == symbol), None)
            if same is not None:
                return same, False
            core.check_new_subscription(plan, len(mine))
            row = VolumeAlertSubscriptionRow(id=str(uuid.uuid4()), owner_id=owner, symbol=symbol,
                                             created_at_ms=self.clock.now_ms())
            s.add(row)
            await _commit(s)
            return row, True

    async def unsubscribe(self, owner: str, sub_id: str) -> None:
        async with self.sessions() as s:
            result = await s.execute(delete(VolumeAlertSubscriptionRow).where(
                VolumeAlertSubscriptionRow.id == sub_id, VolumeAlertSubscriptionRow.owner_id == owner))
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFound(sub_id)
            await s.commit()


def _items(list_id: str, owner: str, symbols: Sequence[str], first: int, now: int) -> list[WatchlistItemRow]:
    return [WatchlistItemRow(watchlist_id=list_id, symbol=sym, owner_id=owner, position=first + i, added_at_ms=now)
            for i, sym in enumerate(symbols)]


def _watchlist(row: WatchlistRow, symbols: list[str]) -> Watchlist:
    return Watchlist(id=row.id, name=row.name, symbols=symbols, created_at_ms=row.created_at_ms,
                     updated_at_ms=row.updated_at_ms)


async def _commit(s: AsyncSession) -> None:
    """Commit; the one unique key a user can hit by hand (a watchlist's name) becomes NameTaken."""
    try:
        await s.commit()
    except IntegrityError:
        await s.rollback()
        raise NameTaken from None
