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
  unmatched transfer_in a deposit. The user's decisions (`TransferLinks`) come first: a confirmed pair is matched
  whatever the rule says, an undone pair never is.

Pools are per asset (universal) or per asset and account (`per_wallet`, the US rule from 2025). Which lot goes first:
FIFO oldest, LIFO newest, HIFO highest unit cost, LOFO lowest unit cost; ties by acquisition order (LIFO reversed).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from heapq import heappop, heappush
from typing import Any

from marketpulse.tax.core import (
    DAY_MS,
    EXACT,
    QUANTUM,
    ZERO,
    Disposal,
    IncomeEvent,
    LotUse,
    Method,
    TaxResult,
    Term,
    Transaction,
    TxType,
    anniversary_day,
    dedupe_key,
    share,
)

LONG, SHORT = Term.LONG, Term.SHORT

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
    """An open lot; `amount` and `basis` shrink as it is consumed (unit cost stays the same). `anniv` is the UTC day
    number of its acquisition's anniversary: a disposal after that day is long-term."""

    __slots__ = ("lot_id", "acquired_ms", "account", "amount", "basis", "basis_known", "anniv")

    def __init__(self, lot_id: int, acquired_ms: int, account: str, amount: Decimal, basis: Decimal,
                 basis_known: bool, anniv: int) -> None:
        self.lot_id = lot_id
        self.acquired_ms = acquired_ms
        self.account = account
        self.amount = amount
        self.basis = basis
        self.basis_known = basis_known
        self.anniv = anniv

    def unit_cost(self) -> Decimal:
        return self.basis / self.amount if self.amount else self.basis  # a dust part rounded to 0 sorts by basis


# A lot part taken from a pool: (lot_id, acquired_ms, account, amount, basis, basis_known, anniv). Plain tuples,
# not objects: a large history takes millions of them.
Part = tuple[int, int, str, Decimal, Decimal, bool, int]


class Pool:
    """The open lots of one asset (and account, per wallet): a heap in the method's order.

    One heap for every method (not a deque for FIFO) because lots moved in by a transfer keep their old date and
    may belong before lots already here. Keys: FIFO (date, lot), LIFO the reverse, HIFO/LOFO (∓unit cost, date, lot);
    the sequence number last keeps two parts of one split lot from ever comparing `Lot`s. Adding and taking the
    first lot are O(log n), so HIFO and LOFO cost what FIFO does.
    """

    __slots__ = ("method", "heap", "_seq")  # `Engine.run` pushes FIFO lots itself, with `add`'s key

    def __init__(self, method: Method) -> None:
        self.method = method
        self.heap: list[tuple[Any, ...]] = []
        self._seq = 0

    def add(self, lot: Lot) -> None:
        self._seq += 1
        method = self.method
        if method is Method.FIFO:
            key: tuple[Any, ...] = (lot.acquired_ms, lot.lot_id, self._seq, lot)
        elif method is Method.LIFO:
            key = (-lot.acquired_ms, -lot.lot_id, -self._seq, lot)
        elif method is Method.HIFO:
            key = (-lot.unit_cost(), lot.acquired_ms, lot.lot_id, self._seq, lot)
        else:
            key = (lot.unit_cost(), lot.acquired_ms, lot.lot_id, self._seq, lot)
        heappush(self.heap, key)

    def total(self) -> tuple[Decimal, Decimal]:
        lots = [entry[-1] for entry in self.heap]
        return sum((x.amount for x in lots), ZERO), sum((x.basis for x in lots), ZERO)


@dataclass(slots=True)
class _Moving:
    """A transfer_out waiting for its transfer_in: the lot parts it carries."""

    tx: Transaction
    parts: list[Part]
    key: str = ""  # its dedupe key, when the user's transfer decisions are in play


@dataclass(frozen=True)
class TransferLinks:
    """The user's decisions on transfer matching, by transactions' dedupe keys: `confirmed` pairs a transfer_in with
    the transfer_out it came from (whatever the automatic rule would say); `undone` pairs are never matched."""

    confirmed: dict[str, str] = field(default_factory=dict)  # transfer_in key → transfer_out key
    undone: frozenset[tuple[str, str]] = frozenset()  # (transfer_out key, transfer_in key)


@dataclass(frozen=True, slots=True)
class Match:
    """How a transfer_in was matched: with its transfer_out (None: treated as a deposit) and why."""

    received: Transaction
    sent: Transaction | None
    status: str  # confirmed (by the user) | auto (same tx_id, or the time-window rule) | unmatched


class Engine:
    def __init__(self, method: Method, per_wallet: bool, links: TransferLinks | None = None) -> None:
        self.method = method
        self.per_wallet = per_wallet
        self.links = links
        self.matches: list[Match] = []
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

    def run(self, ordered_transactions: Iterable[Transaction]) -> None:
        """`apply` each transaction, with a buy's path (the commonest row) inlined: a million rows pay for every
        call and attribute look-up on it."""
        pools, per_wallet, method, apply = self.pools, self.per_wallet, self.method, self.apply
        buy, fifo = TxType.BUY, method is Method.FIFO
        for tx in ordered_transactions:
            if tx.type is not buy or tx.price_usd is None or not fifo:
                apply(tx)
                continue
            key = (tx.asset, tx.account if per_wallet else "")
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = Pool(method)
            self._next_lot += 1
            at = tx.timestamp_ms
            lot = Lot(self._next_lot, at, tx.account, tx.amount, tx.amount * tx.price_usd + tx.fee_usd, True,
                      anniversary_day(at // DAY_MS))
            pool._seq += 1
            heappush(pool.heap, (at, lot.lot_id, pool._seq, lot))

    def acquire(self, tx: Transaction, basis: Decimal, known: bool) -> None:
        self._next_lot += 1
        at = tx.timestamp_ms
        lot = Lot(self._next_lot, at, tx.account, tx.amount, basis, known, anniversary_day(at // DAY_MS))
        self.pool(tx.asset, tx.account).add(lot)

    def take(self, tx: Transaction) -> tuple[list[Part], Decimal]:
        """Consume `tx.amount` from the pool in method order: the parts taken, and the amount no lot covered."""
        heap = self.pool(tx.asset, tx.account).heap
        wanted = tx.amount
        parts: list[Part] = []
        while wanted > 0 and heap:
            lot = heap[0][-1]
            amount = lot.amount
            if amount <= wanted:
                heappop(heap)
                parts.append((lot.lot_id, lot.acquired_ms, lot.account, amount, lot.basis, lot.basis_known, lot.anniv))
                wanted -= amount
                continue
            used = (lot.basis * wanted / amount).quantize(QUANTUM)  # core.share, inlined: the hottest line
            parts.append((lot.lot_id, lot.acquired_ms, lot.account, wanted, used, lot.basis_known, lot.anniv))
            lot.amount = amount - wanted
            lot.basis -= used  # by subtraction, so the two parts add up to the lot's basis exactly
            wanted = ZERO
        return parts, wanted

    def dispose(self, tx: Transaction) -> None:
        parts, unmatched = self.take(tx)
        price = tx.price_usd if tx.price_usd is not None else ZERO
        day = tx.timestamp_ms // DAY_MS
        uses = tuple(LotUse(p[0], p[1], p[2], p[3], p[4], p[5], LONG if day > p[6] else SHORT) for p in parts)
        if len(parts) == 1:
            basis = parts[0][4]
        else:
            basis = ZERO
            for p in parts:
                basis += p[4]
        proceeds = tx.amount * price - tx.fee_usd
        self.disposals.append(Disposal(tx.timestamp_ms, tx.type, tx.asset, tx.account, tx.tx_id, tx.amount,
                                       proceeds, uses, unmatched, basis, proceeds - basis))

    def send(self, tx: Transaction) -> None:
        parts, _uncovered = self.take(tx)  # coins never acquired here arrive with zero basis, flagged, below
        key = dedupe_key(tx) if self.links is not None else ""
        self.moving.setdefault(tx.asset, deque()).append(_Moving(tx, parts, key))

    def receive(self, tx: Transaction) -> None:
        sent = self._match(tx)
        if sent is None:
            self.deposit(tx)
            return
        moved = sum((p[3] for p in sent.parts), ZERO)
        arriving = min(tx.amount, moved)  # less than moved: the network fee was paid in the asset
        extra = tx.amount - arriving  # > 0 when the sender had no lots for part of it
        fee = sent.tx.fee_usd + tx.fee_usd
        if arriving > 0:
            self._arrive(tx, sent.parts, arriving, moved, fee)
            fee = ZERO
        if extra > 0:
            self._next_lot += 1
            at = tx.timestamp_ms
            lot = Lot(self._next_lot, at, tx.account, extra, fee, False, anniversary_day(at // DAY_MS))
            self.pool(tx.asset, tx.account).add(lot)

    def _arrive(self, tx: Transaction, parts: list[Part], arriving: Decimal, moved: Decimal, fee: Decimal) -> None:
        # Each part arrives with its share of the amount received, its whole basis and a share of the USD fee (by
        # basis, or by amount when the basis is zero); the last part takes the remainders so nothing is lost.
        basis_total = sum((p[4] for p in parts), ZERO)
        spread_on_basis = basis_total > 0
        weight_total = basis_total if spread_on_basis else moved
        fee_left, amount_left = fee, arriving
        pool = self.pool(tx.asset, tx.account)
        last = len(parts) - 1
        for index, (lot_id, acquired, _account, part_amount, part_basis, known, anniv) in enumerate(parts):
            weight = part_basis if spread_on_basis else part_amount
            part_fee = fee_left if index == last else share(fee, weight, weight_total)
            amount = amount_left if index == last else share(arriving, part_amount, moved)
            fee_left -= part_fee
            amount_left -= amount
            pool.add(Lot(lot_id, acquired, tx.account, amount, part_basis + part_fee, known, anniv))

    def _match(self, tx: Transaction) -> _Moving | None:
        queue = self.moving.get(tx.asset)
        chosen, status = None, "auto"
        links = self.links
        candidates: Iterable[_Moving] = queue or ()
        if links is not None and queue:
            in_key = dedupe_key(tx)
            wanted = links.confirmed.get(in_key)
            chosen = next((sent for sent in queue if sent.key == wanted), None) if wanted else None
            status = "confirmed" if chosen is not None else status
            candidates = [sent for sent in queue if (sent.key, in_key) not in links.undone]
        if chosen is None and tx.tx_id:
            chosen = next((sent for sent in candidates if sent.tx.tx_id == tx.tx_id), None)
        if chosen is None:
            for sent in candidates:
                fits = sent.tx.amount >= tx.amount and tx.timestamp_ms - sent.tx.timestamp_ms <= TRANSFER_WINDOW_MS
                if fits and not (tx.tx_id and sent.tx.tx_id):
                    chosen = sent
                    break
        if chosen is not None and queue is not None:
            queue.remove(chosen)
        self.matches.append(Match(tx, None if chosen is None else chosen.tx, "unmatched" if chosen is None else status))
        return chosen

    def deposit(self, tx: Transaction) -> None:
        known = tx.price_usd is not None
        self.acquire(tx, tx.amount * tx.price_usd + tx.fee_usd if tx.price_usd is not None else tx.fee_usd, known)

    def apply(self, tx: Transaction) -> None:
        kind = tx.type
        if kind is TxType.SELL or kind is TxType.FEE:
            self.dispose(tx)
        elif kind is TxType.BUY or kind is TxType.DEPOSIT:
            self.deposit(tx)
        elif kind is TxType.INCOME:
            value = tx.amount * (tx.price_usd or ZERO)
            self.acquire(tx, value, tx.price_usd is not None)
            self.income.append(IncomeEvent(tx.timestamp_ms, tx.asset, tx.amount, value, tx.account, tx.tx_id))
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


def compute(transactions: Iterable[Transaction], method: Method, per_wallet: bool = False,
            links: TransferLinks | None = None) -> TaxResult:
    """Every disposal and income event of the history, in time order (the input need not be sorted)."""
    engine = Engine(method, per_wallet, links)
    with localcontext(EXACT):
        engine.run(ordered(transactions))
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


def transfer_matches(transactions: Iterable[Transaction], links: TransferLinks | None = None) -> list[Match]:
    """How each transfer_in of the history is matched (the same whatever the lot method), in time order."""
    engine = Engine(Method.FIFO, False, links or TransferLinks())
    with localcontext(EXACT):
        engine.run(ordered(transactions))
    return engine.matches
