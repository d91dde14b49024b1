"""Credit debt: what a card refund took back that the balance could not give (`credit_purchases.debt`) is paid
down by the user's later purchases, by card or in USDT, oldest debt first, in the purchase's own transaction.

The purchase is granted whole (a `purchase` entry), then an `adjustment` takes back what goes to the debt (ledger
key `debt:{purchase key}`, so a repeated settlement pays once); the billing view's `credit_debt` shrinks by as much.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketpulse.credits.core import Kind
from marketpulse.credits.service import CreditLedger
from marketpulse.payments.tables import CreditPurchaseRow


async def pay_down(s: AsyncSession, ledger: CreditLedger, *, owner_id: str, credits: int, key: str) -> int:
    """Use up to `credits` just granted under `key` to pay the owner's credit debt; how many went to it."""
    if credits <= 0:
        return 0
    owing = list((await s.execute(select(CreditPurchaseRow).where(
        CreditPurchaseRow.owner_id == owner_id, CreditPurchaseRow.debt > 0)
        .order_by(CreditPurchaseRow.created_at_ms, CreditPurchaseRow.session_id).with_for_update())).scalars())
    pay = min(credits, sum(p.debt for p in owing))
    if pay <= 0:
        return 0
    taken = await ledger.apply(s, owner_id=owner_id, kind=Kind.ADJUSTMENT, amount=-pay,
                               idempotency_key=f"debt:{key}", reason="credit debt paid down by a purchase")
    if taken.repeated or not taken.ok:
        return 0
    left = pay
    for row in owing:
        part = min(row.debt, left)
        row.debt -= part
        left -= part
        if not left:
            break
    return pay
