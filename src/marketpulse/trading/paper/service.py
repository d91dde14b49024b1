"""Paper trading service: accepts orders (risk-checked first), fills them on closed candles, marks on tickers.

The thin adapter around the pure pieces (`orders`, `matching`, `account`, `risk.manager`): it loads an owner's
books, lets the pure code decide, writes the books back in one transaction, then publishes fills and halts.
One asyncio lock per owner serializes this process's writers; `SELECT … FOR UPDATE` on the account row does
the same across processes on PostgreSQL (SQLite serializes every writer anyway).

Risk is judged twice: when an order is placed (at the price it can fill at, `risk.fill_reference`) and when it
fills (at the fill price; a breach rejects the order then, with the reason). Every closed candle and ticker also
asks whether equity has fallen to the maintenance margin; if so the account is liquidated (`_liquidate`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import DEFAULT_PLAN
from marketpulse.bus import EventBus, topics
from marketpulse.clock import Clock
from marketpulse.marketdata.models import Candle
from marketpulse.metrics import PAPER_FILLS
from marketpulse.settings import Settings
from marketpulse.trading.paper import store
from marketpulse.trading.paper.account import Book, Position
from marketpulse.trading.paper.matching import Bar, fee_for, match
from marketpulse.trading.paper.orders import (
    OrderSpec,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    expires_at_ms,
    is_expired,
)
from marketpulse.trading.paper.tables import PaperAccountRow, PaperFillRow, PaperOrderRow, PaperPositionRow
from marketpulse.trading.risk.manager import (
    MAINTENANCE_MARGIN_RATE,
    MANUAL,
    AccountExposure,
    OrderIntent,
    Plan,
    PositionKey,
    Rejection,
    RiskLimits,
    check_order,
    daily_loss_breached,
    fill_reference,
    is_marketable,
    limits_for_plan,
    liquidation_due,
    liquidation_price,
    next_utc_midnight_ms,
    utc_day_start_ms,
)

log = structlog.get_logger(__name__)

CONSUMER_GROUP = "paper-trading"


# The plan an owner has now (the users table's, looked up in the caller's transaction); None for an owner with no
# user row, whose account keeps the plan it was opened with.
PlanLookup = Callable[[AsyncSession, str], Awaitable[str | None]]


@dataclass(frozen=True)
class PaperConfig:
    plan: Plan  # a new account's plan until its owner's plan is known (the plan table's default)
    starting_balance: float
    taker_fee_bps: float
    maker_fee_bps: float
    slippage_bps: float
    max_position_notional: float
    daily_loss_limit_pct: float
    leverage: float = 1.0

    @classmethod
    def from_settings(cls, s: Settings) -> PaperConfig:
        return cls(
            Plan(DEFAULT_PLAN), s.paper_starting_balance, s.paper_taker_fee_bps, s.paper_maker_fee_bps,
            s.paper_slippage_bps, s.paper_max_position_notional, s.paper_daily_loss_limit_pct, s.paper_leverage,
        )

    def limits(self, plan: str) -> RiskLimits:
        return limits_for_plan(
            plan, max_position_notional=self.max_position_notional,
            daily_loss_limit_pct=self.daily_loss_limit_pct, leverage=self.leverage,
        )


class RiskRejected(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


class OrderNotFound(LookupError):
    pass


class UnknownSymbol(LookupError):
    """No price for the symbol in the live market or the candle store: nothing to trade it against."""

    def __init__(self, symbol: str) -> None:
        super().__init__(f"unknown symbol {symbol}: it has no market data (not in the live market or the store)")
        self.symbol = symbol


class PositionNotFound(LookupError):
    pass


class PositionBusy(Exception):
    """A running deployment's position: its strategy manages it; stop the deployment to close it."""


class OrderNotOpen(Exception):
    def __init__(self, order: PaperOrderRow) -> None:
        super().__init__(f"order {order.id} is {order.status}, not open")
        self.order = order


@dataclass(frozen=True)
class BookedFill:
    """A fill decided by the matcher or a deployment's engine, to be booked, stored and published."""

    order_id: str
    symbol: str
    signed_qty: float
    price: float
    fee: float
    time_ms: int
    fill_id: str | None = None  # set by deployments so a redelivered candle can't book the same fill twice
    book: str = MANUAL  # the deployment whose position it moves ("" for the owner's manual trades)


class PaperTradingService:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], bus: EventBus, clock: Clock, config: PaperConfig,
        plans: PlanLookup | None = None,
    ) -> None:
        self.sessions, self.bus, self.clock, self.config, self.plans = sessions, bus, clock, config, plans
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._marks: dict[str, float] = {}  # last price seen per symbol, for market-order risk checks

    # --- reads ------------------------------------------------------------------------------------------------
    async def account(self, owner_id: str) -> dict[str, Any]:
        async with self.sessions() as s:
            account = await self._account(s, owner_id)
            book, _ = await store.load_book(s, account)
            await s.commit()
        return account_summary(account, book, self.clock.now_ms(), self.config.leverage)

    async def positions(self, owner_id: str) -> list[PaperPositionRow]:
        async with self.sessions() as s:
            return await store.positions(s, owner_id)

    async def orders(self, owner_id: str, status: str | None = None, limit: int = 200) -> list[PaperOrderRow]:
        await self._expire_day_orders(owner_id)
        async with self.sessions() as s:
            return await store.list_orders(s, owner_id, status, limit)

    async def fills(self, owner_id: str, limit: int = 200) -> list[PaperFillRow]:
        async with self.sessions() as s:
            return await store.list_fills(s, owner_id, limit)

    async def order(self, owner_id: str, order_id: str) -> PaperOrderRow:
        async with self.sessions() as s:
            row = await store.get_order(s, owner_id, order_id)
        if row is None:
            raise OrderNotFound(order_id)
        return row

    # --- writes -----------------------------------------------------------------------------------------------
    async def place_order(
        self, owner_id: str, spec: OrderSpec, *, deployment_id: str | None = None, active_from_ms: int | None = None,
        order_id: str | None = None,
    ) -> PaperOrderRow:
        """Risk-check and store an open order; RiskRejected (nothing stored) when a limit says no.

        An `order_id` makes the call idempotent (a redelivered candle re-deciding the same order gets it back).
        """
        now = self.clock.now_ms()
        async with self._locks[owner_id], self.sessions() as s:
            if order_id is not None and (known := await store.get_order(s, owner_id, order_id)) is not None:
                return known
            account = await self._account(s, owner_id, lock=True)
            mark = await self._mark(s, spec.symbol)
            if mark is None:
                raise UnknownSymbol(spec.symbol)
            if deployment_id is not None and not await store.deployment_running(s, owner_id, deployment_id):
                # Stopped meanwhile (by its owner, or by a liquidation this minute): an order would sit open forever.
                raise RiskRejected(Rejection("deployment_stopped", f"deployment {deployment_id} is stopped"))
            # Judged where it can fill: a marketable limit/stop fills at the market, not at its own price.
            reference = fill_reference(spec.side.sign, spec.type.value, spec.trigger_price, mark)
            intent = OrderIntent(spec.symbol, spec.signed_quantity, reference, deployment_id or MANUAL)
            rejection = await self._check_risk(s, account, intent, now)
            if rejection is not None:
                raise RiskRejected(rejection)
            row = _new_order_row(owner_id, spec, now, active_from_ms, deployment_id, order_id)
            row.taker = spec.limit_price is not None and is_marketable(spec.side.sign, "limit", spec.limit_price, mark)
            s.add(row)
            await s.commit()
        log.info("paper order accepted", owner=owner_id, order=row.id, symbol=row.symbol, side=row.side)
        return row

    async def record_rejected(
        self, owner_id: str, spec: OrderSpec, rejection: Rejection, *, deployment_id: str | None = None,
        order_id: str | None = None,
    ) -> PaperOrderRow:
        """Keep a refused strategy order as a `rejected` row with its reason: a deployment has no HTTP caller
        to answer, so this is where its owner sees why it didn't trade. Idempotent given an `order_id`."""
        now = self.clock.now_ms()
        row = _new_order_row(owner_id, spec, now, None, deployment_id, order_id)
        _close_order(row, OrderStatus.REJECTED, f"{rejection.reason}: {rejection.message}", now)
        async with self.sessions() as s:
            if order_id is not None and (known := await store.get_order(s, owner_id, order_id)) is not None:
                return known
            await self._account(s, owner_id)
            s.add(row)
            await s.commit()
        return row

    async def cancel_order(self, owner_id: str, order_id: str) -> PaperOrderRow:
        async with self._locks[owner_id], self.sessions() as s:
            row = await store.get_order(s, owner_id, order_id, lock=True)
            if row is None:
                raise OrderNotFound(order_id)
            if row.status != OrderStatus.OPEN.value:
                raise OrderNotOpen(row)
            _close_order(row, OrderStatus.CANCELLED, "cancelled by the owner", self.clock.now_ms())
            await s.commit()
        return row

    async def close_position(self, owner_id: str, symbol: str, book: str = MANUAL) -> PaperOrderRow:
        """Close a position in one action: a market order for all of it, filled now at the last price seen.

        The latest mark (a ticker or a closed candle) is the market right now, so this is no look-ahead; slippage
        and the taker fee apply as to any market fill. A running deployment's position is its strategy's to
        manage (PositionBusy): stop the deployment, choosing to close it or to leave it and close it later here.
        """
        now = self.clock.now_ms()
        async with self._locks[owner_id], self.sessions() as s:
            account = await self._account(s, owner_id, lock=True)
            books, rows = await store.load_book(s, account)
            pos = books.positions.get((symbol, book))
            if pos is None:
                raise PositionNotFound(symbol)
            if book != MANUAL and await store.deployment_running(s, owner_id, book):
                raise PositionBusy(f"deployment {book} is running: stop it to close its {symbol} position")
            price = self._marks.get(symbol) or books.value_at(pos)
            order = await self._close_at(s, owner_id, books, pos, price, "position closed by the owner", now)
            fill = _book_fill(s, owner_id, books, order.fill)
            halt = self._after_change(account, books, now)
            store.save_book(s, account, books, rows, now)
            await s.commit()
        await self._publish(owner_id, [fill], [halt] if halt else [])
        log.info("paper position closed", owner=owner_id, symbol=symbol, book=book or "manual", price=fill.price)
        return order.row

    async def _close_at(
        self, s: AsyncSession, owner_id: str, books: Book, pos: Position, price: float, reason: str, now: int
    ) -> _ClosingOrder:
        """A filled market order taking `pos` flat at `price` (with slippage and the taker fee); not yet booked."""
        side = Side.SELL if pos.quantity > 0 else Side.BUY
        fill_price = price * (1.0 + side.sign * self.config.slippage_bps / 10_000.0)
        qty = abs(pos.quantity)
        fee = fee_for(qty * fill_price, True, self.config.taker_fee_bps, self.config.maker_fee_bps)
        spec = OrderSpec(pos.symbol, side, OrderType.MARKET, qty)
        row = _new_order_row(owner_id, spec, now, now, pos.book or None)
        row.taker, row.reason = True, reason
        row.status, row.fill_price, row.fee, row.filled_at_ms = OrderStatus.FILLED.value, fill_price, fee, now
        s.add(row)
        await s.flush()  # the fill's foreign key needs the order row first (no ORM relationship orders them)
        return _ClosingOrder(row, BookedFill(row.id, pos.symbol, -pos.quantity, fill_price, fee, now, book=pos.book))

    async def check_at_fill(
        self, owner_id: str, symbol: str, signed_qty: float, price: float, book: str, held: tuple[float, float]
    ) -> Rejection | None:
        """The limits a deployment's entry must still pass when it fills at `price`: the account as it is now, with
        the deployment's position as its engine holds it (`held`: quantity, entry price; a replayed minute may have
        booked the fill already)."""
        async with self._locks[owner_id], self.sessions() as s:
            account = await self._account(s, owner_id)
            books, _ = await store.load_book(s, account)
            books.positions.pop((symbol, book), None)
            if held[0]:
                books.positions[(symbol, book)] = Position(symbol, held[0], held[1], 0, book)
            fill = BookedFill("", symbol, signed_qty, price, 0.0, 0, book=book)
            refused = self._check_fill(account, books, fill, self.clock.now_ms())
            await s.rollback()  # nothing changes: the check only read the books
        return refused

    async def reject_open_order(self, owner_id: str, order_id: str, reason: str) -> None:
        async with self._locks[owner_id], self.sessions() as s:
            order = await store.get_order(s, owner_id, order_id, lock=True)
            if order is not None and order.status == OrderStatus.OPEN.value:
                _close_order(order, OrderStatus.REJECTED, reason, self.clock.now_ms())
            await s.commit()

    async def record_engine_fills(
        self, owner_id: str, fills: Sequence[BookedFill], cancelled: Mapping[str, str], deployment_id: str
    ) -> None:
        """Book fills a deployment's engine executed into the deployment's position, completing their orders.

        `cancelled` maps order ids the engine dropped without a fill to the reason.
        """
        now = self.clock.now_ms()
        async with self._locks[owner_id], self.sessions() as s:
            account = await self._account(s, owner_id, lock=True)
            book, rows = await store.load_book(s, account)
            stored = []
            for fill in fills:
                if fill.fill_id is not None and await s.get(PaperFillRow, fill.fill_id) is not None:
                    continue  # booked before a failure made the bus deliver this candle again
                order = await store.get_order(s, owner_id, fill.order_id)
                if order is None:  # an exit the engine made on its own (none today: deployments take no stops)
                    order = _engine_order_row(owner_id, fill, deployment_id, now)
                    s.add(order)
                    await s.flush()
                _complete_order(order, fill, now)
                stored.append(_book_fill(s, owner_id, book, fill))
            for order_id, reason in cancelled.items():
                order = await store.get_order(s, owner_id, order_id)
                if order is not None and order.status == OrderStatus.OPEN.value:
                    _close_order(order, OrderStatus.CANCELLED, reason, now)
            halts = await self._guard(s, owner_id, account, book, {}, now, stored)
            store.save_book(s, account, book, rows, now)
            await s.commit()
        await self._publish(owner_id, stored, halts)

    # --- the market stream ------------------------------------------------------------------------------------
    async def on_candles(self, candles: Sequence[Candle]) -> None:
        """Fill what the closed candles trigger, then mark every touched account at their closes."""
        by_symbol: dict[str, list[Candle]] = defaultdict(list)
        for c in sorted(candles, key=lambda c: c.open_time):
            if c.closed:
                by_symbol[c.symbol].append(c)
                self._marks[c.symbol] = c.close
        if not by_symbol:
            return
        async with self.sessions() as s:
            owners = await store.owners_touching(s, by_symbol)
        for owner_id in owners:
            await self._fill_owner(owner_id, by_symbol)

    async def on_marks(self, marks: Mapping[str, float]) -> None:
        """Revalue positions at ticker prices (unrealized P&L, the daily-loss breaker, liquidation) between
        candles."""
        self._marks.update(marks)
        async with self.sessions() as s:
            owners = await store.owners_touching(s, marks)
        for owner_id in owners:
            now = self.clock.now_ms()
            async with self._locks[owner_id], self.sessions() as s:
                account = await self._account(s, owner_id, lock=True)
                book, rows = await store.load_book(s, account)
                book.marks.update({k: v for k, v in marks.items() if k in book.symbols()})
                fills: list[PaperFillRow] = []
                halts = await self._guard(s, owner_id, account, book, {}, now, fills)
                store.save_book(s, account, book, rows, now)
                await s.commit()
            await self._publish(owner_id, fills, halts)

    async def _fill_owner(self, owner_id: str, by_symbol: Mapping[str, list[Candle]]) -> None:
        now = self.clock.now_ms()
        async with self._locks[owner_id], self.sessions() as s:
            account = await self._account(s, owner_id, lock=True)
            book, rows = await store.load_book(s, account)
            fills: list[PaperFillRow] = []
            halts: list[dict[str, Any]] = []
            # One query for the owner's resting orders; only symbols they trade are walked, not the whole batch.
            orders_by_symbol: dict[str, list[PaperOrderRow]] = defaultdict(list)
            for order in await store.open_orders(s, owner_id, manual_only=True):
                orders_by_symbol[order.symbol].append(order)
            for symbol in sorted((set(orders_by_symbol) | book.symbols()) & set(by_symbol)):
                for candle in by_symbol[symbol]:
                    bar = Bar(candle.open_time, candle.open, candle.high, candle.low, candle.close)
                    # A gap through the liquidation price liquidates at the open, before any order of this bar.
                    at_open = Bar(bar.open_time, bar.open, bar.open, bar.open, bar.open)
                    halts += await self._guard(s, owner_id, account, book, {symbol: at_open}, now, fills)
                    fills += self._fill_on_bar(s, owner_id, account, book, orders_by_symbol[symbol], bar, now)
                    halts += await self._guard(s, owner_id, account, book, {symbol: bar}, now, fills)
                    if symbol in book.symbols():
                        book.marks[symbol] = candle.close
            halts += await self._guard(s, owner_id, account, book, {}, now, fills)
            store.save_book(s, account, book, rows, now)
            await s.commit()
        await self._publish(owner_id, fills, halts)

    def _fill_on_bar(
        self, s: AsyncSession, owner_id: str, account: PaperAccountRow, book: Book, orders: list[PaperOrderRow],
        bar: Bar, now: int,
    ) -> list[PaperFillRow]:
        fills = []
        for order in orders:
            if order.status != OrderStatus.OPEN.value or bar.open_time < order.active_from_ms:
                continue
            if is_expired(order.expires_at_ms, bar.open_time) or is_expired(order.expires_at_ms, now):
                _close_order(order, OrderStatus.EXPIRED, "day order: its UTC day ended", now)
                continue
            fill = self._match(order, bar)
            if fill is not None and (refused := self._check_fill(account, book, fill, now)) is not None:
                _close_order(order, OrderStatus.REJECTED, f"at fill: {refused.reason}: {refused.message}", now)
            elif fill is not None:
                fills.append(_book_fill(s, owner_id, book, fill))
                order.status, order.fill_price, order.fee = OrderStatus.FILLED.value, fill.price, fill.fee
                order.filled_at_ms, order.updated_at_ms = fill.time_ms, now
            elif order.time_in_force == TimeInForce.IOC.value:
                _close_order(order, OrderStatus.CANCELLED, "ioc: not marketable at the first bar's open", now)
        return fills

    def _match(self, order: PaperOrderRow, bar: Bar) -> BookedFill | None:
        side = Side(order.side)
        trigger = order.limit_price if order.type == OrderType.LIMIT.value else order.stop_price
        quote = match(OrderType(order.type), side, trigger, TimeInForce(order.time_in_force), bar,
                      self.config.slippage_bps)
        if quote is None:
            return None
        taker = quote.taker or order.taker  # a limit marketable when placed took liquidity
        fee = fee_for(order.quantity * quote.price, taker, self.config.taker_fee_bps, self.config.maker_fee_bps)
        return BookedFill(order.id, order.symbol, side.sign * order.quantity, quote.price, fee, bar.open_time)

    def _check_fill(self, account: PaperAccountRow, book: Book, fill: BookedFill, now: int) -> Rejection | None:
        """The limits again, at the fill price and against the account as it is now (no pending orders)."""
        book.marks[fill.symbol] = fill.price  # a price the market traded at: value the account there
        exposure = AccountExposure(
            {k: p.quantity for k, p in book.positions.items()}, {}, account.halted_until_ms, book.equity(),
            {sym: book.mark(sym) or 0.0 for sym in book.symbols()},
        )
        intent = OrderIntent(fill.symbol, fill.signed_qty, fill.price, fill.book)
        return check_order(self.config.limits(account.plan), exposure, intent, now)

    # --- liquidation and the breaker --------------------------------------------------------------------------
    async def _guard(
        self, s: AsyncSession, owner_id: str, account: PaperAccountRow, book: Book, bars: Mapping[str, Bar],
        now: int, fills: list[PaperFillRow],
    ) -> list[dict[str, Any]]:
        """Liquidate when equity reached the maintenance margin (within `bars`' ranges, else at the marks), then
        roll the UTC day and trip the daily-loss breaker; the halt events to publish."""
        prices = _liquidation_prices(book, bars)
        halts = [] if prices is None else [await self._liquidate(s, owner_id, account, book, prices, now, fills)]
        halt = self._after_change(account, book, now)  # the day still rolls; a liquidation's loss may trip it too
        return halts + ([halt] if halt else [])

    async def _liquidate(
        self, s: AsyncSession, owner_id: str, account: PaperAccountRow, book: Book, prices: Mapping[str, float],
        now: int, fills: list[PaperFillRow],
    ) -> dict[str, Any]:
        """Close every position (the breaching symbol at its liquidation price, the rest at their marks), withdraw
        open orders, stop deployments; a loss beyond the balance is absorbed, so the balance ends at zero or more."""
        equity_before = book.equity()
        for pos in list(book.positions.values()):
            price = prices.get(pos.symbol) or book.value_at(pos)
            reason = "liquidated: equity reached the maintenance margin"
            order = await self._close_at(s, owner_id, book, pos, price, reason, now)
            fills.append(_book_fill(s, owner_id, book, order.fill))
        absorbed = max(0.0, -book.cash)
        book.cash += absorbed
        await store.cancel_open_orders(s, owner_id, "liquidation: the account's positions were closed", now)
        await store.stop_deployments(s, owner_id, now)
        log.warning("paper account liquidated", owner=owner_id, equity_before=equity_before, absorbed_loss=absorbed)
        # The risk-halt shape: limit_pct is the maintenance margin rate; the account is not halted past now.
        return {
            "account_id": account.owner_id, "owner_id": account.owner_id, "reason": "liquidation",
            "equity": book.equity(), "day_start_equity": account.day_start_equity,
            "limit_pct": MAINTENANCE_MARGIN_RATE, "halted_until": account.halted_until_ms or now, "time": now,
        }

    # --- helpers ----------------------------------------------------------------------------------------------
    async def _account(self, s: AsyncSession, owner_id: str, lock: bool = False) -> PaperAccountRow:
        """The owner's account, its plan brought up to the owner's plan now, so every risk check (at the order and
        at the fill) follows the plan as it is when it runs."""
        plan = await self.plans(s, owner_id) if self.plans is not None else None
        account = await store.get_or_create_account(
            s, owner_id, plan=plan or self.config.plan.value, starting_balance=self.config.starting_balance,
            now_ms=self.clock.now_ms(), lock=lock,
        )
        if plan is not None and account.plan != plan:
            account.plan = plan
        return account

    async def _mark(self, s: AsyncSession, symbol: str) -> float | None:
        return self._marks.get(symbol) or await store.last_close(s, symbol)

    def note_prices(self, prices: Mapping[str, float]) -> None:
        """Prices from the live market table (an API process's ticker feed): what orders are judged at, without
        revaluing accounts (the runner does that where it runs)."""
        self._marks.update({k: v for k, v in prices.items() if v > 0})

    async def price_of(self, symbol: str) -> float | None:
        """The last price seen for `symbol` (live, else the newest stored close); None for an unknown symbol."""
        async with self.sessions() as s:
            return await self._mark(s, symbol)

    async def _check_risk(
        self, s: AsyncSession, account: PaperAccountRow, intent: OrderIntent, now: int
    ) -> Rejection | None:
        book, _ = await store.load_book(s, account)
        pending: dict[PositionKey, float] = defaultdict(float)
        marks = {sym: self._marks.get(sym) or book.mark(sym) or 0.0 for sym in book.symbols()}
        for o in await store.open_orders(s, account.owner_id):
            pending[(o.symbol, o.deployment_id or MANUAL)] += Side(o.side).sign * o.quantity
            marks.setdefault(o.symbol, self._marks.get(o.symbol) or o.limit_price or o.stop_price or 0.0)
        exposure = AccountExposure(
            {k: p.quantity for k, p in book.positions.items()}, pending, account.halted_until_ms, book.equity(), marks
        )
        return check_order(self.config.limits(account.plan), exposure, intent, now)

    def _after_change(self, account: PaperAccountRow, book: Book, now: int) -> dict[str, Any] | None:
        """Roll the UTC day, then trip the daily-loss breaker if equity fell through it; the halt event or None."""
        if utc_day_start_ms(now) > account.day_start_ms:
            account.day_start_ms, account.day_start_equity = utc_day_start_ms(now), book.equity()
        halted = account.halted_until_ms is not None and now < account.halted_until_ms
        limits = self.config.limits(account.plan)
        if halted or not daily_loss_breached(limits, account.day_start_equity, book.equity()):
            return None
        account.halted_until_ms = next_utc_midnight_ms(now)
        return {
            "account_id": account.owner_id, "owner_id": account.owner_id, "reason": "daily_loss_limit",
            "equity": book.equity(), "day_start_equity": account.day_start_equity,
            "limit_pct": limits.daily_loss_limit_pct, "halted_until": account.halted_until_ms, "time": now,
        }

    async def _expire_day_orders(self, owner_id: str) -> None:
        now = self.clock.now_ms()
        async with self._locks[owner_id], self.sessions() as s:
            for order in await store.open_orders(s, owner_id):
                if is_expired(order.expires_at_ms, now):
                    _close_order(order, OrderStatus.EXPIRED, "day order: its UTC day ended", now)
            await s.commit()

    async def _publish(self, owner_id: str, fills: Iterable[PaperFillRow], halts: Iterable[dict[str, Any]]) -> None:
        # After the commit: a subscriber that reads the store on a fill event finds the fill there.
        for f in fills:
            PAPER_FILLS.labels(side=f.side).inc()
            await self.bus.publish(topics.PAPER_FILLS, fill_event(f))
        for halt in halts:
            log.warning("paper account halted", **halt)
            await self.bus.publish(topics.RISK_HALTS, topics.RiskHalt(**halt))


@dataclass(frozen=True)
class _ClosingOrder:
    row: PaperOrderRow
    fill: BookedFill


def _liquidation_prices(book: Book, bars: Mapping[str, Bar]) -> dict[str, float] | None:
    """Where to liquidate, or None: for a symbol with a bar, the price inside the bar where equity met the
    maintenance margin (the open when it gapped through); otherwise, when already due at the marks, the marks."""
    for symbol, bar in bars.items():
        qty = book.net_quantity(symbol)
        mark = book.mark(symbol)
        if qty == 0.0 or mark is None:
            continue
        other = sum(abs(p.quantity) * book.value_at(p) for p in book.positions.values() if p.symbol != symbol)
        level = liquidation_price(book.equity(), other, qty, mark)
        if level is None:
            continue
        if qty > 0 and bar.low <= level:
            return {symbol: min(bar.open, level)}
        if qty < 0 and bar.high >= level:
            return {symbol: max(bar.open, level)}
    if liquidation_due(book.equity(), book.notional()):
        return {}  # every position at its mark
    return None


def _new_order_row(
    owner_id: str, spec: OrderSpec, now: int, active_from_ms: int | None, deployment_id: str | None,
    order_id: str | None = None,
) -> PaperOrderRow:
    return PaperOrderRow(
        id=order_id or str(uuid.uuid4()), owner_id=owner_id, symbol=spec.symbol, side=spec.side.value,
        type=spec.type.value, quantity=spec.quantity, limit_price=spec.limit_price, stop_price=spec.stop_price,
        time_in_force=spec.time_in_force.value, status=OrderStatus.OPEN.value, reason=None,
        active_from_ms=now if active_from_ms is None else active_from_ms,
        expires_at_ms=expires_at_ms(spec.time_in_force, now), deployment_id=deployment_id,
        created_at_ms=now, updated_at_ms=now,
    )


def _engine_order_row(owner_id: str, fill: BookedFill, deployment_id: str, now: int) -> PaperOrderRow:
    side = Side.BUY if fill.signed_qty > 0 else Side.SELL
    spec = OrderSpec(fill.symbol, side, OrderType.MARKET, abs(fill.signed_qty))
    row = _new_order_row(owner_id, spec, now, fill.time_ms, deployment_id)
    row.id = fill.order_id
    return row


def _complete_order(order: PaperOrderRow, fill: BookedFill, now: int) -> None:
    """Mark an order filled; a flip fills one order twice (exit, then entry), so fills accumulate (VWAP)."""
    qty = abs(fill.signed_qty)
    if order.status == OrderStatus.FILLED.value and order.fill_price is not None:
        total = order.quantity + qty
        order.fill_price = (order.fill_price * order.quantity + fill.price * qty) / total
        order.quantity, order.fee = total, (order.fee or 0.0) + fill.fee
    else:
        order.quantity, order.fill_price, order.fee = qty, fill.price, fill.fee
    order.status, order.filled_at_ms, order.updated_at_ms = OrderStatus.FILLED.value, fill.time_ms, now


def _close_order(order: PaperOrderRow, status: OrderStatus, reason: str, now: int) -> None:
    order.status, order.reason, order.updated_at_ms = status.value, reason, now


def _book_fill(s: AsyncSession, owner_id: str, book: Book, fill: BookedFill) -> PaperFillRow:
    realized = book.apply_fill(fill.symbol, fill.signed_qty, fill.price, fill.fee, fill.time_ms, fill.book)
    row = PaperFillRow(
        id=fill.fill_id or str(uuid.uuid4()), owner_id=owner_id, order_id=fill.order_id, symbol=fill.symbol,
        side=(Side.BUY if fill.signed_qty > 0 else Side.SELL).value, quantity=abs(fill.signed_qty),
        price=fill.price, fee=fill.fee, realized_pnl=realized, time_ms=fill.time_ms,
    )
    s.add(row)
    return row


def fill_event(f: PaperFillRow) -> topics.PaperFill:
    """The `paper.fills` payload."""
    return topics.PaperFill(
        account_id=f.owner_id, owner_id=f.owner_id, order_id=f.order_id, fill_id=f.id, symbol=f.symbol,
        side=f.side, quantity=f.quantity, price=f.price, fee=f.fee, realized_pnl=f.realized_pnl, time=f.time_ms,
    )


def account_summary(account: PaperAccountRow, book: Book, now: int, leverage: float = 1.0) -> dict[str, Any]:
    equity, unrealized = book.equity(), book.unrealized_pnl()
    halted = account.halted_until_ms is not None and now < account.halted_until_ms
    return {
        "owner_id": account.owner_id, "plan": account.plan, "starting_balance": account.starting_balance,
        "balance": book.cash, "equity": equity, "realized_pnl": book.realized_pnl, "unrealized_pnl": unrealized,
        "fees": book.fees_paid, "net_pnl": equity - account.starting_balance,
        "day_start_equity": account.day_start_equity, "daily_pnl": equity - account.day_start_equity,
        "halted": halted, "halted_until": account.halted_until_ms if halted else None,
        "open_positions": len(book.positions), "leverage": leverage, "margin_used": book.notional() / leverage,
    }
