"""The credit ledger's pure rules: kinds and signs of entries, charge results, and when a monthly grant is due.

A ledger entry's `amount` is signed: grants, purchases and refunds add, usage subtracts, an adjustment (an
administrator's correction) may do either. The balance is the sum of the entries and never goes below zero.
Monthly grants fall on the user's renewal day (for now the day of the month they signed up on; the last day of
shorter months), keyed `grant:{user}:{yyyy-mm}` of the period they open, so each is granted once.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class Kind(StrEnum):
    GRANT = "grant"
    PURCHASE = "purchase"
    USAGE = "usage"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


ADDING = frozenset({Kind.GRANT, Kind.PURCHASE, Kind.REFUND})


class InsufficientCredits(Exception):
    """Raise from any API action that needs credits the caller lacks: answered 402 with the balance and the cost
    (`api.errors` installs the handler)."""

    def __init__(self, balance: int, cost: int) -> None:
        super().__init__(f"this needs {cost} credits and the balance is {balance}")
        self.balance, self.cost = balance, cost


@dataclass(frozen=True)
class ChargeResult:
    ok: bool  # False: insufficient, nothing was charged
    balance: int  # after the charge (or as it stands, when refused or a repeat)
    cost: int
    entry_id: int | None = None  # the ledger entry this key made (now or earlier)
    repeated: bool = False  # the idempotency key had been used: nothing new was charged

    @property
    def insufficient(self) -> bool:
        return not self.ok

    def require(self) -> ChargeResult:
        """This result, or InsufficientCredits (for an API action: 402)."""
        if not self.ok:
            raise InsufficientCredits(self.balance, self.cost)
        return self


def signed_amount(kind: Kind, amount: int) -> int:
    """The entry's signed amount: `amount` is a positive count, except for adjustments, which carry their sign."""
    if kind == Kind.ADJUSTMENT:
        if amount == 0:
            raise ValueError("an adjustment can't be zero")
        return amount
    if amount <= 0:
        raise ValueError(f"a {kind.value} needs a positive amount")
    return amount if kind in ADDING else -amount


def renewal_ms(signup_ms: int, year: int, month: int) -> int:
    """The renewal instant in (year, month): the sign-up's day of month and time of day, on the month's last day
    when it has fewer days."""
    signup = datetime.fromtimestamp(signup_ms / 1000, UTC)
    day = min(signup.day, calendar.monthrange(year, month)[1])
    return int(signup.replace(year=year, month=month, day=day).timestamp() * 1000)


def current_period(signup_ms: int, now_ms: int) -> str | None:
    """`yyyy-mm` of the newest renewal at or before `now_ms` (the sign-up month's is the sign-up itself); None
    before the sign-up."""
    if now_ms < signup_ms:
        return None
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    year, month = now.year, now.month
    if now_ms < renewal_ms(signup_ms, year, month):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return f"{year:04d}-{month:02d}"


def grant_key(owner_id: str, period: str) -> str:
    return f"grant:{owner_id}:{period}"
