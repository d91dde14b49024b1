"""The lot engine on hand-worked examples: every expected number below is worked out in the comments, not by the
engine. Amounts and prices are Decimal text throughout (no float ever enters)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketpulse.tax.core import Method, Term, TxType, holding_term
from marketpulse.tax.lots import compute, open_lots
from marketpulse.times import parse_time_ms

from .helpers import tx

D = Decimal

# Three BTC lots, then one sale of 1.5 BTC at 40,000 with a 15 USD fee: proceeds 60,000 − 15 = 59,985.
#   lot 1: 2023-01-10, 1 @ 20,000 + 10 fee → basis 20,010 (unit 20,010)
#   lot 2: 2023-06-01, 1 @ 30,000         → basis 30,000
#   lot 3: 2023-09-01, 1 @ 25,000         → basis 25,000
THREE_LOTS = [
    tx("2023-01-10", "buy", "BTC", "1", "20000", fee="10"),
    tx("2023-06-01", "buy", "BTC", "1", "30000"),
    tx("2023-09-01", "buy", "BTC", "1", "25000"),
    tx("2024-02-01", "sell", "BTC", "1.5", "40000", fee="15"),
]


@pytest.mark.parametrize(
    ("method", "lots", "basis"),
    [
        # FIFO: all of lot 1 (20,010) + half of lot 2 (15,000) = 35,010
        (Method.FIFO, [(1, "1", "20010"), (2, "0.5", "15000")], "35010"),
        # LIFO: all of lot 3 (25,000) + half of lot 2 (15,000) = 40,000
        (Method.LIFO, [(3, "1", "25000"), (2, "0.5", "15000")], "40000"),
        # HIFO: lot 2 (30,000, the dearest) + half of lot 3 (12,500) = 42,500
        (Method.HIFO, [(2, "1", "30000"), (3, "0.5", "12500")], "42500"),
        # LOFO: lot 1 (20,010, the cheapest) + half of lot 3 (12,500) = 32,510
        (Method.LOFO, [(1, "1", "20010"), (3, "0.5", "12500")], "32510"),
    ],
)
def test_each_method_consumes_its_lots_with_partial_lots_and_fees(
    method: Method, lots: list[tuple[int, str, str]], basis: str
) -> None:
    (sale,) = compute(THREE_LOTS, method).disposals
    assert sale.proceeds == D("59985")
    assert [(use.lot_id, use.amount, use.basis) for use in sale.lots] == [(i, D(a), D(b)) for i, a, b in lots]
    assert sale.basis == D(basis)
    assert sale.gain == D("59985") - D(basis)
    assert not sale.missing_basis


def test_a_partly_consumed_lot_keeps_the_rest_of_its_basis_for_the_next_sale() -> None:
    # FIFO: the first sale leaves 0.5 of lot 2 (basis 15,000); a second sale of 1 takes it plus 0.5 of lot 3 (12,500).
    history = [*THREE_LOTS, tx("2024-03-01", "sell", "BTC", "1", "50000")]
    second = compute(history, Method.FIFO).disposals[1]
    assert [(u.lot_id, u.amount, u.basis) for u in second.lots] == [
        (2, D("0.5"), D("15000")),
        (3, D("0.5"), D("12500")),
    ]
    assert second.gain == D("50000") - D("27500")


def test_same_timestamp_a_buy_is_used_before_a_sale_listed_before_it() -> None:
    history = [
        tx("2024-05-01T12:00:00Z", "sell", "ETH", "1", "3000"),
        tx("2024-05-01T12:00:00Z", "buy", "ETH", "1", "2900"),
    ]
    (sale,) = compute(history, Method.FIFO).disposals
    assert sale.basis == D("2900") and sale.gain == D("100") and not sale.missing_basis


def test_same_timestamp_buys_tie_break_by_input_order() -> None:
    # Two lots at the same millisecond: FIFO takes the first listed (1,000), LIFO the last listed (1,200).
    history = [
        tx("2024-05-01", "buy", "ETH", "1", "1000"),
        tx("2024-05-01", "buy", "ETH", "1", "1200"),
        tx("2024-06-01", "sell", "ETH", "1", "1500"),
    ]
    assert compute(history, Method.FIFO).disposals[0].basis == D("1000")
    assert compute(history, Method.LIFO).disposals[0].basis == D("1200")


def test_per_wallet_uses_only_the_selling_accounts_lots() -> None:
    # Account a holds a 2022 lot at 10,000, account b a 2023 lot at 50,000; b sells 1 at 60,000.
    history = [
        tx("2022-01-01", "buy", "BTC", "1", "10000", account="a"),
        tx("2023-06-01", "buy", "BTC", "1", "50000", account="b"),
        tx("2024-02-01", "sell", "BTC", "1", "60000", account="b"),
    ]
    universal = compute(history, Method.FIFO).disposals[0]  # pooled: takes a's older lot
    assert (universal.basis, universal.gain, universal.lots[0].term) == (D("10000"), D("50000"), Term.LONG)
    wallet = compute(history, Method.FIFO, per_wallet=True).disposals[0]  # b's own lot only
    assert (wallet.basis, wallet.gain, wallet.lots[0].term) == (D("50000"), D("10000"), Term.SHORT)
    assert wallet.lots[0].account == "b"


def test_a_transfer_between_own_accounts_is_no_disposal_and_carries_date_and_basis() -> None:
    # a buys 1 BTC (2022, basis 10,000), sends it to b; b receives 0.999 (0.001 network fee) and 5 USD fee is paid.
    # b also bought 1 at 50,000 in 2023. Per wallet, FIFO: b's lots are the moved one (2022-01-01, 0.999,
    # basis 10,000 + 5 = 10,005) then its own (2023-06-01, 1, 50,000). b sells 1 at 60,000:
    #   0.999 of the moved lot: basis 10,005, long-term; 0.001 of its own: basis 50, short-term → basis 10,055.
    history = [
        tx("2022-01-01", "buy", "BTC", "1", "10000", account="a"),
        tx("2023-06-01", "buy", "BTC", "1", "50000", account="b"),
        tx("2023-07-01T10:00:00Z", "transfer_out", "BTC", "1", fee="5", account="a", tx_id="0xabc"),
        tx("2023-07-01T10:20:00Z", "transfer_in", "BTC", "0.999", account="b", tx_id="0xabc"),
        tx("2024-02-01", "sell", "BTC", "1", "60000", account="b"),
    ]
    result = compute(history, Method.FIFO, per_wallet=True)
    (sale,) = result.disposals  # the transfer itself disposed of nothing
    assert [(u.amount, u.basis, u.term) for u in sale.lots] == [
        (D("0.999"), D("10005"), Term.LONG),
        (D("0.001"), D("50"), Term.SHORT),
    ]
    assert sale.basis == D("10055") and sale.gain == D("49945")
    assert sale.lots[0].acquired_ms == parse_time_ms("2022-01-01")
    # b keeps 0.999 of its own lot at 49,950; a holds nothing.
    held = open_lots(history, Method.FIFO, per_wallet=True)
    assert held[("BTC", "b")] == (D("0.999"), D("49950"))
    assert held[("BTC", "a")] == (D("0"), D("0"))


def test_transfers_match_by_amount_and_time_without_a_tx_id() -> None:
    history = [
        tx("2024-01-01", "buy", "SOL", "10", "100", account="a"),
        tx("2024-01-02T00:00:00Z", "transfer_out", "SOL", "10", account="a"),
        tx("2024-01-02T01:00:00Z", "transfer_in", "SOL", "9.99", account="b"),
        tx("2024-02-01", "sell", "SOL", "9.99", "150", account="b"),
    ]
    (sale,) = compute(history, Method.FIFO, per_wallet=True).disposals
    assert sale.basis == D("1000") and not sale.missing_basis  # the whole 1,000 moved with the 9.99 SOL


def test_an_unmatched_transfer_in_is_a_deposit_without_known_basis() -> None:
    history = [
        tx("2024-01-02", "transfer_in", "SOL", "5", account="b"),
        tx("2024-02-01", "sell", "SOL", "5", "150", account="b"),
    ]
    (sale,) = compute(history, Method.FIFO, per_wallet=True).disposals
    assert sale.basis == D("0") and sale.missing_basis


def test_a_disposal_without_acquisition_has_zero_basis_and_a_flag() -> None:
    # 1 ETH held at 1,000; 2 ETH sold at 1,500: 1 from the lot, 1 uncovered at zero basis.
    history = [
        tx("2024-01-01", "buy", "ETH", "1", "1000"),
        tx("2024-03-01", "sell", "ETH", "2", "1500"),
    ]
    (sale,) = compute(history, Method.FIFO).disposals
    assert sale.proceeds == D("3000") and sale.basis == D("1000") and sale.gain == D("2000")
    assert sale.unmatched_amount == D("1") and sale.missing_basis


def test_income_is_taxed_at_market_value_and_becomes_the_lots_basis() -> None:
    # 2 ETH staking reward at 2,000 → 4,000 of income and a lot costing 4,000; sold at 2,500 → gain 1,000.
    history = [
        tx("2024-01-01", "income", "ETH", "2", "2000", tx_id="stake-1"),
        tx("2024-06-01", "sell", "ETH", "2", "2500"),
    ]
    result = compute(history, Method.FIFO)
    (income,) = result.income
    assert (income.amount, income.value_usd, income.tx_id) == (D("2"), D("4000"), "stake-1")
    assert result.disposals[0].basis == D("4000") and result.disposals[0].gain == D("1000")


def test_a_fee_paid_in_crypto_is_a_disposal_and_a_withdrawal_is_not() -> None:
    # 1 ETH at 1,000; 0.01 ETH spent as a fee at 2,000 (proceeds 20, basis 10); 0.49 withdrawn (no disposal,
    # takes basis 490); 0.5 sold at 3,000 → basis 500.
    history = [
        tx("2024-01-01", "buy", "ETH", "1", "1000"),
        tx("2024-02-01", "fee", "ETH", "0.01", "2000"),
        tx("2024-03-01", "withdrawal", "ETH", "0.49"),
        tx("2024-04-01", "sell", "ETH", "0.5", "3000"),
    ]
    fee, sale = compute(history, Method.FIFO).disposals
    assert (fee.type, fee.proceeds, fee.basis) == (TxType.FEE, D("20.00"), D("10"))
    assert (sale.proceeds, sale.basis) == (D("1500.0"), D("500"))


@pytest.mark.parametrize(
    ("bought", "sold", "term"),
    [
        ("2023-03-15", "2024-03-15T23:59:59Z", Term.SHORT),  # same calendar day a year later: not > 1 year
        ("2023-03-15", "2024-03-16", Term.LONG),
        ("2023-03-15T23:00:00Z", "2024-03-16T00:30:00Z", Term.LONG),
        ("2024-02-29", "2025-02-28", Term.SHORT),  # leap day: its anniversary is 28 February
        ("2024-02-29", "2025-03-01", Term.LONG),
        ("2024-01-01", "2024-01-01", Term.SHORT),
    ],
)
def test_irs_holding_period_boundary(bought: str, sold: str, term: Term) -> None:
    assert holding_term(parse_time_ms(bought), parse_time_ms(sold)) is term
    history = [tx(bought, "buy", "BTC", "1", "100"), tx(sold, "sell", "BTC", "1", "200")]
    assert compute(history, Method.FIFO).disposals[0].lots[0].term is term
