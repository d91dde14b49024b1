"""Short builders for transactions in tests: dates as text, numbers as text (Decimal, never float)."""

from __future__ import annotations

from decimal import Decimal

from marketpulse.tax.core import Transaction, TxType
from marketpulse.times import parse_time_ms


def tx(
    when: str | int,
    kind: str,
    asset: str,
    amount: str,
    price: str | None = None,
    fee: str = "0",
    account: str = "main",
    tx_id: str = "",
) -> Transaction:
    return Transaction(
        parse_time_ms(when),
        TxType(kind),
        asset,
        Decimal(amount),
        None if price is None else Decimal(price),
        Decimal(fee),
        account,
        tx_id,
    )
