"""The lot engine: a whole transaction history → disposals (with the lots each consumed) and income.

Order: transactions by time; at the same millisecond acquisitions come first, then transfers out, transfers in, and
disposals last, each group in input order (so a buy and a sell stamped alike never leave the sell without basis).

- buy: a lot costing amount × price + fee. income: a lot at market value (amount × price), and an income event.
  deposit: a lot at amount × price (the user's stated cost; no price = zero basis, flagged as unknown).
- sell / fee (crypto spent on a fee): a disposal; proceeds = amount × price − fee.
  withdrawal: the lots leave (not a taxable event: the coins went somewhere this history does not follow).
- transfer_out then transfer_in of the same asset between own accounts (same tx_id, or else the oldest open
  transfer_out of that asset within TRANSFER_WINDOW_MS whose amount covers the amount received): the consumed lots
  move to the receiving account with their dates and their whole basis (the difference in amount was the network
  fee; its basis stays with the coins received) plus any fee_usd. An unmatched transfer_out is a withdrawal, an
  unmatched transfer_in a deposit.

Pools are per asset (universal) or per asset and account (`per_wallet`, the US rule from 2025). Which lot goes first:
FIFO oldest, LIFO newest, HIFO highest unit cost, LOFO lowest unit cost; ties by acquisition order (LIFO reversed).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from marketpulse.tax.core import (
    EXACT,
    ZERO,
    Disposal,
    IncomeEvent,
    LotUse,
    Method,
    TaxResult,
    Transaction,
    TxType,
    holding_term,
    share,
)

TRANSFER_WINDOW_MS = 24 * 3_600_000
_RANK = {
    TxType.BUY: 0,
    TxType.INCOME: 0,
    TxType.DEPOSIT: 0,
    TxType.TRANSFER_OUT: 1,
    TxType.TRANSFER_IN: 2,
    TxType.SELL: 3,
    TxType.FEE: 3,
    TxType.WITHDRAWAL: 3,
}


class Lot:
    """An open lot; `amount` and `basis` shrink as it is consumed (unit cost stays the same)."""

    __slots__ = ("lot_id", "acquired_ms", "account", "amount", "basis", "unit_cost", "basis_known")

    def __init__(
        self, lot_id: int, acquired_ms: int, account: str, amount: Decimal, basis: Decimal, basis_known: bool
    ) -> None:
        self.lot_id = lot_id
        self.acquired_ms = acquired_ms
        self.account = account
        self.amount = amount
        self.basis = basis
        self.unit_cost = basis / amount if amount else basis  # a dust part rounded to 0 sorts by its basis
        self.basis_known = basis_known


class Pool:
    """The open lots of one asset (and account, per wallet): a heap in the method's order.

    One heap for every method (not a deque for FIFO) because lots moved in by a transfer keep their old date and
    may belong before lots already here. Keys: FIFO (date, lot), LIFO the reverse, HIFO/LOFO (∓unit cost, date, lot);
    the sequence number last keeps two parts of one split lot from ever comparing `Lot`s.
    """

    __slots__ = ("method", "_heap", "_seq")

    def __init__(self, method: Method) -> None:
        self.method = method
        self._heap: list[tuple[Any, ...]] = []
        self._seq = 0

    def add(self, lot: Lot) -> None:
        self._seq += 1
        method = self.method
        if method is Method.FIFO:
            key: tuple[Any, ...] = (lot.acquired_ms, lot.lot_id, self._seq, lot)
        elif method is Method.LIFO:
            key = (-lot.acquired_ms, -lot.lot_id, -self._seq, lot)
        elif method is Method.HIFO:
            key = (-lot.unit_cost, lot.acquired_ms, lot.lot_id, self._seq, lot)
        else:
            key = (lot.unit_cost, lot.acquired_ms, lot.lot_id, self._seq, lot)
        heapq.heappush(self._heap, key)

    def peek(self) -> Lot | None:
        return self._heap[0][-1] if self._heap else None

    def pop(self) -> None:
        heapq.heappop(self._heap)

    def total(self) -> tuple[Decimal, Decimal]:
        lots = [entry[-1] for entry in self._heap]
        return sum((x.amount for x in lots), ZERO), sum((x.basis for x in lots), ZERO)


@dataclass(slots=True)
class _Moving:
    """A transfer_out waiting for its transfer_in: the lot parts it carries."""

    tx: Transaction
    parts: list[Lot]


class Engine:
    def __init__(self, method: Method, per_wallet: bool) -> None:
        self.method = method
        self.per_wallet = per_wallet
        self.pools: dict[tuple[str, str], Pool] = {}
        self.disposals: list[Disposal] = []
        self.income: list[IncomeEvent] = []
        self.moving: dict[str, deque[_Moving]] = {}
        self._next_lot = 0

    def pool(self, asset: str, account: str) -> Pool:
        key = (asset, account if self.per_wallet else "")
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = Pool(self.method)
        return pool

    def acquire(self, tx: Transaction, basis: Decimal, known: bool) -> None:
        self._next_lot += 1
        lot = Lot(self._next_lot, tx.timestamp_ms, tx.account, tx.amount, basis, known)
        self.pool(tx.asset, tx.account).add(lot)

    def take(self, tx: Transaction) -> tuple[list[Lot], Decimal]:
        """Consume `tx.amount` from the pool in method order: the parts taken, and the amount no lot covered."""
        pool = self.pool(tx.asset, tx.account)
        wanted = tx.amount
        parts: list[Lot] = []
        while wanted > 0:
            lot = pool.peek()
            if lot is None:
                break
            if lot.amount <= wanted:
                pool.pop()
                parts.append(lot)
                wanted -= lot.amount
                continue
            used = share(lot.basis, wanted, lot.amount)
            parts.append(Lot(lot.lot_id, lot.acquired_ms, lot.account, wanted, used, lot.basis_known))
            lot.amount -= wanted
            lot.basis -= used  # by subtraction, so the two parts add up to the lot's basis exactly
            wanted = ZERO
        return parts, wanted

    def dispose(self, tx: Transaction) -> None:
        parts, unmatched = self.take(tx)
        price = tx.price_usd if tx.price_usd is not None else ZERO
        uses = tuple(
            LotUse(
                p.lot_id,
                p.acquired_ms,
                p.account,
                p.amount,
                p.basis,
                p.basis_known,
                holding_term(p.acquired_ms, tx.timestamp_ms),
            )
            for p in parts
        )
        self.disposals.append(
            Disposal(
                tx.timestamp_ms,
                tx.type,
                tx.asset,
                tx.account,
                tx.tx_id,
                tx.amount,
                tx.amount * price - tx.fee_usd,
                uses,
                unmatched,
            )
        )

    def send(self, tx: Transaction) -> None:
        parts, _uncovered = self.take(tx)  # coins never acquired here arrive with zero basis, flagged, below
        self.moving.setdefault(tx.asset, deque()).append(_Moving(tx, parts))

    def receive(self, tx: Transaction) -> None:
        sent = self._match(tx)
        if sent is None:
            self.deposit(tx)
            return
        moved = sum((p.amount for p in sent.parts), ZERO)
        arriving = min(tx.amount, moved)  # less than moved: the network fee was paid in the asset
        extra = tx.amount - arriving  # > 0 when the sender had no lots for part of it
        fee = sent.tx.fee_usd + tx.fee_usd
        if arriving > 0:
            self._arrive(tx, sent.parts, arriving, moved, fee)
            fee = ZERO
        if extra > 0:
            self._next_lot += 1
            lot = Lot(self._next_lot, tx.timestamp_ms, tx.account, extra, fee, False)
            self.pool(tx.asset, tx.account).add(lot)

    def _arrive(self, tx: Transaction, parts: list[Lot], arriving: Decimal, moved: Decimal, fee: Decimal) -> None:
        # Each part arrives with its share of the amount received, its whole basis and a share of the USD fee (by
        # basis, or by amount when the basis is zero); the last part takes the remainders so nothing is lost.
        basis_total = sum((p.basis for p in parts), ZERO)
        spread_on_basis = basis_total > 0
        weight_total = basis_total if spread_on_basis else moved
        fee_left, amount_left = fee, arriving
        pool = self.pool(tx.asset, tx.account)
        last = len(parts) - 1
        for index, part in enumerate(parts):
            weight = part.basis if spread_on_basis else part.amount
            part_fee = fee_left if index == last else share(fee, weight, weight_total)
            amount = amount_left if index == last else share(arriving, part.amount, moved)
            fee_left -= part_fee
            amount_left -= amount
            lot = Lot(part.lot_id, part.acquired_ms, tx.account, amount, part.basis + part_fee, part.basis_known)
            pool.add(lot)

    def _match(self, tx: Transaction) -> _Moving | None:
        queue = self.moving.get(tx.asset)
        if not queue:
            return None
        chosen = None
        for sent in queue:
            if tx.tx_id and sent.tx.tx_id == tx.tx_id:
                chosen = sent
                break
        if chosen is None:
            for sent in queue:
                fits = sent.tx.amount >= tx.amount and tx.timestamp_ms - sent.tx.timestamp_ms <= TRANSFER_WINDOW_MS
                if fits and not (tx.tx_id and sent.tx.tx_id):
                    chosen = sent
                    break
        if chosen is not None:
            queue.remove(chosen)
        return chosen

    def deposit(self, tx: Transaction) -> None:
        known = tx.price_usd is not None
        self.acquire(tx, tx.amount * tx.price_usd + tx.fee_usd if tx.price_usd is not None else tx.fee_usd, known)

    def apply(self, tx: Transaction) -> None:
        kind = tx.type
        if kind is TxType.BUY or kind is TxType.DEPOSIT:
            self.deposit(tx)
        elif kind is TxType.INCOME:
            value = tx.amount * (tx.price_usd or ZERO)
            self.acquire(tx, value, tx.price_usd is not None)
            self.income.append(IncomeEvent(tx.timestamp_ms, tx.asset, tx.amount, value, tx.account, tx.tx_id))
        elif kind is TxType.SELL or kind is TxType.FEE:
            self.dispose(tx)
        elif kind is TxType.WITHDRAWAL:
            self.take(tx)
        elif kind is TxType.TRANSFER_OUT:
            self.send(tx)
        else:
            self.receive(tx)

    def finish(self) -> None:
        # Transfers out never received here left this history: like withdrawals, their lots are gone.
        self.moving.clear()


def ordered(transactions: Iterable[Transaction]) -> list[Transaction]:
    return sorted(transactions, key=lambda tx: (tx.timestamp_ms, _RANK[tx.type]))


def compute(transactions: Iterable[Transaction], method: Method, per_wallet: bool = False) -> TaxResult:
    """Every disposal and income event of the history, in time order (the input need not be sorted)."""
    engine = Engine(method, per_wallet)
    with localcontext(EXACT):
        for tx in ordered(transactions):
            engine.apply(tx)
        engine.finish()
    return TaxResult(tuple(engine.disposals), tuple(engine.income))


def open_lots(
    transactions: Iterable[Transaction], method: Method, per_wallet: bool = False
) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(amount, basis) still held per pool after the whole history: for checks and the holdings view."""
    engine = Engine(method, per_wallet)
    with localcontext(EXACT):
        for tx in ordered(transactions):
            engine.apply(tx)
        return {key: pool.total() for key, pool in engine.pools.items()}
