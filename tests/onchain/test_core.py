"""USDT invoices' pure rules: prices in token units, unique amounts under a cent, what a transfer pays, outcomes."""

from __future__ import annotations

import pytest

from marketpulse.accounts.plans import UnknownPlan
from marketpulse.onchain.core import (
    TRANSFER_TOPIC,
    LogEntry,
    Refused,
    Status,
    UnknownProduct,
    address_topic,
    credits_worth,
    display,
    invoice_amount,
    judge,
    paid_value,
    product,
)

TOKEN = "0x" + "aa" * 20
OTHER_TOKEN = "0x" + "bb" * 20
US = "0x" + "11" * 20
SOMEONE = "0x" + "22" * 20


def transfer(token: str, to: str, value: int) -> LogEntry:
    return LogEntry(token, (TRANSFER_TOPIC, address_topic(SOMEONE), address_topic(to)), f"0x{value:064x}")


def test_products_are_paid_plans_and_credit_packs() -> None:
    assert product("pro", None).price_cents == 2_900 and product("premium", None).name == "elite"
    pack = product(None, "credits_1000")
    assert (pack.kind, pack.price_cents, pack.credits) == ("credits", 10_000, 1_000)  # $100 buys 1,000 credits
    with pytest.raises(UnknownProduct):
        product("free", None)
    with pytest.raises(UnknownProduct):
        product(None, "credits_7")
    with pytest.raises(UnknownPlan):
        product("gold", None)


def test_amounts_differ_in_the_last_decimals_and_stay_under_a_cent_above_the_price() -> None:
    assert invoice_amount(2_900, 6, 1) == 29_000_001
    assert invoice_amount(2_900, 6, 9_999) == 29_009_999  # 29.009999: under a cent more
    assert invoice_amount(2_900, 18, 1) == 29 * 10**18 + 10**12  # 18 decimals: the same 10^-6 USD steps
    assert len({invoice_amount(10_000, 6, n) for n in range(1, 10_000)}) == 9_999
    assert display(29_000_001, 6) == "29.000001"
    with pytest.raises(ValueError):
        invoice_amount(2_900, 6, 0)


def test_credits_are_ten_cents_each_rounded_down() -> None:
    assert credits_worth(100_000_000, 6) == 1_000
    assert credits_worth(199_999, 6) == 1  # $0.199999
    assert credits_worth(99_999, 6) == 0


def test_paid_value_counts_only_the_configured_token_to_the_receiving_address() -> None:
    assert paid_value(True, [transfer(TOKEN, US, 5), transfer(TOKEN, SOMEONE, 7), transfer(TOKEN, US, 2)],
                      TOKEN, US) == 7
    with pytest.raises(Refused, match="failed"):
        paid_value(False, [transfer(TOKEN, US, 5)], TOKEN, US)
    with pytest.raises(Refused, match="another token"):
        paid_value(True, [transfer(OTHER_TOKEN, US, 5)], TOKEN, US)
    with pytest.raises(Refused, match="another address"):
        paid_value(True, [transfer(TOKEN, SOMEONE, 5)], TOKEN, US)
    with pytest.raises(Refused, match="no USDT"):
        paid_value(True, [], TOKEN, US)


def test_outcomes_of_exact_over_under_and_late_payments() -> None:
    base = {"kind": "plan", "name": "pro", "pack_credits": 0, "amount": 29_000_123, "decimals": 6,
            "expires_at_ms": 1_000}
    exact = judge(**base, value=29_000_123, mined_at_ms=999)
    assert (exact.status, exact.change_plan, exact.grant_credits) == (Status.PAID, "pro", 0)
    over = judge(**base, value=30_000_123, mined_at_ms=1_000)
    assert (over.status, over.change_plan, over.grant_credits) == (Status.PAID, "pro", 10)  # $1 more: 10 credits
    under = judge(**base, value=20_000_000, mined_at_ms=10)
    assert (under.status, under.change_plan, under.grant_credits) == (Status.UNDERPAID, None, 200)
    late = judge(**base, value=29_000_123, mined_at_ms=1_001)
    assert (late.status, late.change_plan, late.grant_credits) == (Status.LATE, None, 290)
    pack = judge(kind="credits", name="credits_100", pack_credits=100, amount=10_000_042, decimals=6,
                 expires_at_ms=1_000, value=10_000_042, mined_at_ms=5)
    assert (pack.status, pack.grant_credits) == (Status.PAID, 100)
