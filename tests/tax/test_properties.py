"""Properties over random histories (hypothesis), for every method, pooled and per wallet:
Σ proceeds − Σ basis = Σ gains, and basis is neither made nor lost by transfers between own accounts."""

from __future__ import annotations

from decimal import Decimal, localcontext

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpulse.tax.core import EXACT, Method, Transaction, TxType
from marketpulse.tax.lots import compute, open_lots

T0 = 1_704_067_200_000  # 2024-01-01 UTC
HOUR = 3_600_000
ACCOUNTS = ("a", "b", "c")
ASSETS = ("BTC", "ETH")

amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(50), places=8)
prices = st.decimals(min_value=Decimal(0), max_value=Decimal(90000), places=2)
fees = st.decimals(min_value=Decimal(0), max_value=Decimal(30), places=2)


@st.composite
def histories(draw: st.DrawFn) -> list[Transaction]:
    """Buys, income, sells (sometimes more than held) and paired transfers (the receiver gets ≤ what was sent)."""
    out: list[Transaction] = []
    for step in range(draw(st.integers(1, 40))):
        at = T0 + step * HOUR * draw(st.integers(1, 500))
        kind = draw(st.sampled_from(["buy", "income", "sell", "transfer"]))
        asset, account = draw(st.sampled_from(ASSETS)), draw(st.sampled_from(ACCOUNTS))
        amount, price, fee = draw(amounts), draw(prices), draw(fees)
        if kind != "transfer":
            out.append(Transaction(at, TxType(kind), asset, amount, price, fee, account, f"t{step}"))
            continue
        to = draw(st.sampled_from([x for x in ACCOUNTS if x != account]))
        received = amount - draw(st.decimals(min_value=Decimal(0), max_value=amount / 100, places=8))
        out.append(Transaction(at, TxType.TRANSFER_OUT, asset, amount, None, Decimal(0), account, f"x{step}"))
        out.append(Transaction(at + 60_000, TxType.TRANSFER_IN, asset, received, None, Decimal(0), to, f"x{step}"))
    return out


def acquired_basis(history: list[Transaction]) -> Decimal:
    """What the user paid: buys at amount × price + fee, income at market value (computed here, not by the engine)."""
    total = Decimal(0)
    for t in history:
        if t.type is TxType.BUY:
            total += t.amount * (t.price_usd or 0) + t.fee_usd
        elif t.type is TxType.INCOME:
            total += t.amount * (t.price_usd or 0)
    return total


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), method=st.sampled_from(list(Method)), per_wallet=st.booleans())
def test_gains_add_up_and_transfers_conserve_basis(
    history: list[Transaction], method: Method, per_wallet: bool
) -> None:
    result = compute(history, method, per_wallet)
    with localcontext(EXACT):
        proceeds = sum((d.proceeds for d in result.disposals), Decimal(0))
        basis = sum((d.basis for d in result.disposals), Decimal(0))
        gains = sum((d.gain for d in result.disposals), Decimal(0))
        assert proceeds - basis == gains
        # Every sold proceeds figure is amount × price − fee of its sell row.
        sells = [t for t in history if t.type is TxType.SELL]
        assert proceeds == sum((t.amount * (t.price_usd or 0) - t.fee_usd for t in sells), Decimal(0))
        # Basis in = basis sold + basis still held: transfers moved it, never made or lost any.
        held = sum((b for _amount, b in open_lots(history, method, per_wallet).values()), Decimal(0))
        assert basis + held == acquired_basis(history)
        # A disposal never consumes more than it sold.
        for d in result.disposals:
            assert sum((u.amount for u in d.lots), Decimal(0)) + d.unmatched_amount == d.amount
