"""Database access for paper trading: load an owner's books, write them back. Every query is scoped by owner."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.marketdata.tables import CandleRow
from marketpulse.trading.paper.account import Book, Position
from marketpulse.trading.paper.orders import OrderStatus
from marketpulse.trading.paper.tables import (
    PaperAccountRow,
    PaperDeploymentRow,
    PaperFillRow,
    PaperOrderRow,
    PaperPositionRow,
)
from marketpulse.trading.risk.manager import utc_day_start_ms


async def get_or_create_account(
    s: AsyncSession, owner_id: str, *, plan: str, starting_balance: float, now_ms: int, lock: bool = False
) -> PaperAccountRow:
    stmt = select(PaperAccountRow).where(PaperAccountRow.owner_id == owner_id)
    if lock:
        stmt = stmt.with_for_update()  # PostgreSQL serializes writers per account; SQLite serializes all writers
    row = (await s.execute(stmt)).scalar_one_or_none()
    if row is not None:
        return row
    row = PaperAccountRow(
        owner_id=owner_id, plan=plan, starting_balance=starting_balance, cash=starting_balance, realized_pnl=0.0,
        fees_paid=0.0, day_start_ms=utc_day_start_ms(now_ms), day_start_equity=starting_balance,
        halted_until_ms=None, created_at_ms=now_ms, updated_at_ms=now_ms,
    )
    s.add(row)
    await s.flush()
    return row


async def positions(s: AsyncSession, owner_id: str) -> list[PaperPositionRow]:
    stmt = (select(PaperPositionRow).where(PaperPositionRow.owner_id == owner_id)
            .order_by(PaperPositionRow.symbol, PaperPositionRow.deployment_id))
    return list((await s.execute(stmt)).scalars())


async def load_book(s: AsyncSession, account: PaperAccountRow) -> tuple[Book, list[PaperPositionRow]]:
    rows = await positions(s, account.owner_id)
    book = Book(cash=account.cash, realized_pnl=account.realized_pnl, fees_paid=account.fees_paid)
    for r in rows:
        pos = Position(r.symbol, r.quantity, r.avg_price, r.opened_at_ms, r.deployment_id)
        book.positions[pos.key] = pos
        book.marks[r.symbol] = r.mark_price
    return book, rows


def save_book(
    s: AsyncSession, account: PaperAccountRow, book: Book, rows: Sequence[PaperPositionRow], now: int
) -> None:
    """Write the books back: account totals, and position rows added, changed or closed."""
    account.cash, account.realized_pnl, account.fees_paid = book.cash, book.realized_pnl, book.fees_paid
    account.updated_at_ms = now
    by_key = {(r.symbol, r.deployment_id): r for r in rows}
    for key, row in by_key.items():
        if key not in book.positions:
            _delete(s, row)
    for key, pos in book.positions.items():
        mark = book.value_at(pos)
        row_or_none = by_key.get(key)
        if row_or_none is None:
            s.add(PaperPositionRow(
                owner_id=account.owner_id, symbol=pos.symbol, deployment_id=pos.book, quantity=pos.quantity,
                avg_price=pos.avg_price, mark_price=mark, opened_at_ms=pos.opened_at_ms,
            ))
        else:
            row_or_none.quantity, row_or_none.avg_price = pos.quantity, pos.avg_price
            row_or_none.mark_price, row_or_none.opened_at_ms = mark, pos.opened_at_ms


def _delete(s: AsyncSession, row: PaperPositionRow) -> None:
    # AsyncSession.delete is a coroutine only to load relationships; these rows have none, so the sync form is safe.
    s.sync_session.delete(row)


async def open_orders(
    s: AsyncSession, owner_id: str, symbol: str | None = None, *, manual_only: bool = False
) -> list[PaperOrderRow]:
    """Open orders, oldest first. `manual_only` leaves out deployments' orders, which their engine fills."""
    stmt = select(PaperOrderRow).where(
        PaperOrderRow.owner_id == owner_id, PaperOrderRow.status == OrderStatus.OPEN.value
    )
    if symbol is not None:
        stmt = stmt.where(PaperOrderRow.symbol == symbol)
    if manual_only:
        stmt = stmt.where(PaperOrderRow.deployment_id.is_(None))
    return list((await s.execute(stmt.order_by(PaperOrderRow.created_at_ms, PaperOrderRow.id))).scalars())


async def list_orders(s: AsyncSession, owner_id: str, status: str | None, limit: int) -> list[PaperOrderRow]:
    stmt = select(PaperOrderRow).where(PaperOrderRow.owner_id == owner_id)
    if status is not None:
        stmt = stmt.where(PaperOrderRow.status == status)
    stmt = stmt.order_by(PaperOrderRow.created_at_ms.desc(), PaperOrderRow.id.desc()).limit(limit)
    return list((await s.execute(stmt)).scalars())


async def list_fills(s: AsyncSession, owner_id: str, limit: int) -> list[PaperFillRow]:
    stmt = (select(PaperFillRow).where(PaperFillRow.owner_id == owner_id)
            .order_by(PaperFillRow.time_ms.desc(), PaperFillRow.id).limit(limit))
    return list((await s.execute(stmt)).scalars())


async def get_order(s: AsyncSession, owner_id: str, order_id: str, *, lock: bool = False) -> PaperOrderRow | None:
    stmt = select(PaperOrderRow).where(PaperOrderRow.owner_id == owner_id, PaperOrderRow.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await s.execute(stmt)).scalar_one_or_none()


async def owners_touching(s: AsyncSession, symbols: Iterable[str]) -> list[str]:
    """Owners with an open order or a position in any of `symbols`: the accounts a candle batch can move."""
    wanted = list(set(symbols))
    if not wanted:
        return []
    with_orders = select(PaperOrderRow.owner_id).where(
        PaperOrderRow.status == OrderStatus.OPEN.value, PaperOrderRow.symbol.in_(wanted)
    )
    with_positions = select(PaperPositionRow.owner_id).where(PaperPositionRow.symbol.in_(wanted))
    found = (await s.execute(with_orders.union(with_positions))).scalars()
    return sorted(set(found))


async def last_close(s: AsyncSession, symbol: str) -> float | None:
    """The most recent stored close for `symbol` (any exchange/interval): a mark when none was seen live."""
    latest = select(func.max(CandleRow.open_time)).where(CandleRow.symbol == symbol).scalar_subquery()
    stmt = select(CandleRow.close).where(CandleRow.symbol == symbol, CandleRow.open_time == latest).limit(1)
    return (await s.execute(stmt)).scalar_one_or_none()


async def deployments(s: AsyncSession, owner_id: str | None, *, running_only: bool = False) -> list[PaperDeploymentRow]:
    """An owner's deployments; owner None is the runner's own view across owners (never an HTTP path)."""
    stmt = select(PaperDeploymentRow)
    if owner_id is not None:
        stmt = stmt.where(PaperDeploymentRow.owner_id == owner_id)
    if running_only:
        stmt = stmt.where(PaperDeploymentRow.status == "running")
    return list((await s.execute(stmt.order_by(PaperDeploymentRow.created_at_ms))).scalars())


async def running_deployment_ids(s: AsyncSession) -> set[str]:
    """The runner's cheap per-batch question (across owners; never an HTTP path)."""
    stmt = select(PaperDeploymentRow.id).where(PaperDeploymentRow.status == "running")
    return set((await s.execute(stmt)).scalars())


async def deployments_by_id(s: AsyncSession, ids: Iterable[str]) -> list[PaperDeploymentRow]:
    wanted = list(ids)
    if not wanted:
        return []
    stmt = select(PaperDeploymentRow).where(PaperDeploymentRow.id.in_(wanted))
    return list((await s.execute(stmt)).scalars())


async def update_deployment(s: AsyncSession, owner_id: str, deployment_id: str, values: dict[str, Any]) -> None:
    await s.execute(
        update(PaperDeploymentRow)
        .where(PaperDeploymentRow.owner_id == owner_id, PaperDeploymentRow.id == deployment_id)
        .values(**values)
    )


async def cancel_deployment_orders(s: AsyncSession, owner_id: str, deployment_id: str, reason: str, now: int) -> None:
    await s.execute(
        update(PaperOrderRow)
        .where(PaperOrderRow.owner_id == owner_id, PaperOrderRow.deployment_id == deployment_id,
               PaperOrderRow.status == OrderStatus.OPEN.value)
        .values(status=OrderStatus.CANCELLED.value, reason=reason, updated_at_ms=now)
    )


async def cancel_open_orders(s: AsyncSession, owner_id: str, reason: str, now: int) -> None:
    await s.execute(
        update(PaperOrderRow)
        .where(PaperOrderRow.owner_id == owner_id, PaperOrderRow.status == OrderStatus.OPEN.value)
        .values(status=OrderStatus.CANCELLED.value, reason=reason, updated_at_ms=now)
    )


async def stop_deployments(s: AsyncSession, owner_id: str, now: int) -> None:
    """Stop every running deployment of the owner (a liquidation took their positions)."""
    await s.execute(
        update(PaperDeploymentRow)
        .where(PaperDeploymentRow.owner_id == owner_id, PaperDeploymentRow.status == "running")
        .values(status="stopped", stopped_at_ms=now)
    )


async def deployment_running(s: AsyncSession, owner_id: str, deployment_id: str) -> bool:
    row = await get_deployment(s, owner_id, deployment_id)
    return row is not None and row.status == "running"


async def get_deployment(s: AsyncSession, owner_id: str, deployment_id: str) -> PaperDeploymentRow | None:
    stmt = select(PaperDeploymentRow).where(
        PaperDeploymentRow.owner_id == owner_id, PaperDeploymentRow.id == deployment_id
    )
    return (await s.execute(stmt)).scalar_one_or_none()
