"""The tax vocabulary: transactions in, disposals and income out. Pure data on `Decimal` (no floats, no I/O).

A transaction is one row of the generic CSV (see `csv_formats`). The engine (`lots.compute`) turns an owner's whole
history into `Disposal`s (each explaining the lots it consumed) and `IncomeEvent`s; reports then pick a tax year.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Context, Decimal
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from marketpulse.times import datetime_ms, ms_datetime

ZERO = Decimal(0)
CENT = Decimal("0.01")
_EPOCH_DATE = date(1970, 1, 1)
# Shares of a lot's basis (and of a sale's proceeds) are rounded to QUANTUM, a billionth of a billionth of a dollar;
# every other figure is a sum or difference of such numbers, exact under EXACT's 60 digits (up to 10^40 USD), so
# Σ gains = Σ proceeds − Σ basis and basis conservation hold to the last digit, whatever the history's length.
QUANTUM = Decimal("1e-18")
EXACT = Context(prec=60)


def share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """total × part / whole, rounded to QUANTUM (the rest of `total` is always found by subtraction)."""
    return (total * part / whole).quantize(QUANTUM)


class TxType(StrEnum):
    BUY = "buy"
    SELL = "sell"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    INCOME = "income"
    FEE = "fee"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"


class Method(StrEnum):
    FIFO = "fifo"
    LIFO = "lifo"
    HIFO = "hifo"
    LOFO = "lofo"


class Term(StrEnum):
    SHORT = "short"
    LONG = "long"


# Types whose USD value is the tax figure itself: without a price the row cannot be taxed honestly.
PRICED_TYPES = frozenset({TxType.BUY, TxType.SELL, TxType.INCOME, TxType.FEE})


@dataclass(frozen=True, slots=True)
class Transaction:
    timestamp_ms: int
    type: TxType
    asset: str
    amount: Decimal  # > 0; the direction comes from the type
    price_usd: Decimal | None  # per unit; None = unknown (allowed only outside PRICED_TYPES)
    fee_usd: Decimal
    account: str
    tx_id: str


class LotUse(NamedTuple):
    """The part of one lot a disposal consumed. (A NamedTuple: the engine makes one per lot a disposal touches,
    millions in a large history, and a tuple is built several times faster than a frozen dataclass.)"""

    lot_id: int
    acquired_ms: int
    account: str
    amount: Decimal
    basis: Decimal
    basis_known: bool
    term: Term


class Disposal(NamedTuple):
    """A sale or other disposal; `basis` is the sum of its lots' bases and `gain` = proceeds − basis (the engine
    computes both once; use `disposal()` to build one by hand)."""

    disposed_ms: int
    type: TxType
    asset: str
    account: str
    tx_id: str
    amount: Decimal
    proceeds: Decimal  # market value minus the fee
    lots: tuple[LotUse, ...]
    unmatched_amount: Decimal  # sold beyond every known lot: reported at zero basis
    basis: Decimal
    gain: Decimal

    @property
    def missing_basis(self) -> bool:
        """True when part of what was sold has no known cost (no acquisition, or one without a price)."""
        return self.unmatched_amount > 0 or any(not use.basis_known for use in self.lots)


def disposal(disposed_ms: int, type: TxType, asset: str, account: str, tx_id: str, amount: Decimal,
             proceeds: Decimal, lots: tuple[LotUse, ...], unmatched_amount: Decimal = ZERO) -> Disposal:
    basis = sum((use.basis for use in lots), ZERO)
    return Disposal(disposed_ms, type, asset, account, tx_id, amount, proceeds, lots, unmatched_amount, basis,
                    proceeds - basis)


@dataclass(frozen=True, slots=True)
class IncomeEvent:
    received_ms: int
    asset: str
    amount: Decimal
    value_usd: Decimal
    account: str
    tx_id: str


@dataclass(frozen=True, slots=True)
class TaxResult:
    disposals: tuple[Disposal, ...]
    income: tuple[IncomeEvent, ...]


def dedupe_key(tx: Transaction) -> str:
    """The identity of a transaction for imports: every field, numbers normalised (1.50 = 1.5), hashed."""
    price = "" if tx.price_usd is None else _canonical(tx.price_usd)
    fields = (str(tx.timestamp_ms), tx.type.value, tx.asset, _canonical(tx.amount), price, _canonical(tx.fee_usd),
              tx.account, tx.tx_id)
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def _canonical(value: Decimal) -> str:
    return format(value.normalize(), "f")


def utc_date(ms: int) -> date:
    return ms_datetime(ms).date()


def anniversary(day: date) -> date:
    """The same calendar day one year later (29 February → 28 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


DAY_MS = 86_400_000


def holding_term(acquired_ms: int, disposed_ms: int) -> Term:
    """IRS rule: the holding period starts the day after acquisition, and long-term means more than one year,
    so a lot sold on the same calendar day a year later is still short-term; the day after is long-term."""
    return Term.LONG if disposed_ms // DAY_MS > anniversary_day(acquired_ms // DAY_MS) else Term.SHORT


@lru_cache(maxsize=4096)
def anniversary_day(day: int) -> int:
    """The UTC day number (days since 1970) of a day's anniversary: cached, as millions of lots share few days."""
    return (anniversary(utc_date(day * DAY_MS)) - _EPOCH_DATE).days


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def year_bounds_ms(year: int) -> tuple[int, int]:
    return datetime_ms(datetime(year, 1, 1)), datetime_ms(datetime(year + 1, 1, 1))
