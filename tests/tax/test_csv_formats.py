"""The generic CSV in (every field checked, errors name line and field) and the report CSVs out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketpulse.tax.core import Method, TxType
from marketpulse.tax.csv_formats import (
    FORM_8949_COLUMNS,
    RowError,
    form_8949_csv,
    gains_csv,
    income_csv,
    read_generic,
    schedule_d_csv,
)
from marketpulse.tax.lots import compute

HEADER = "timestamp,type,asset,amount,price_usd,fee_usd,account,tx_id\n"


def parse(body: str) -> list:
    return [row.tx for row in read_generic(HEADER + body)]


def test_reads_iso_and_epoch_ms_timestamps_and_decimals_exactly() -> None:
    (first, second) = parse("2024-01-02T03:04:05Z,buy,btc,0.1,42000.10,1.5,cb,a\n1704067200000,deposit,ETH,2,,,,b\n")
    assert first.timestamp_ms == 1_704_164_645_000 and first.type is TxType.BUY and first.asset == "BTC"
    assert (first.amount, first.price_usd, first.fee_usd) == (Decimal("0.1"), Decimal("42000.10"), Decimal("1.5"))
    assert second.timestamp_ms == 1_704_067_200_000 and second.price_usd is None and second.account == "default"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("yesterday,buy,BTC,1,1,,a,x", "timestamp"),
        ("2024-01-01,swap,BTC,1,1,,a,x", "type"),
        ("2024-01-01,buy,,1,1,,a,x", "asset"),
        ("2024-01-01,buy,BTC,-1,1,,a,x", "amount"),
        ("2024-01-01,buy,BTC,abc,1,,a,x", "amount"),
        ("2024-01-01,sell,BTC,1,,,a,x", "price_usd"),  # a sale without a price is refused, never taken as 0
        ("2024-01-01,buy,BTC,1,NaN,,a,x", "price_usd"),
        ("2024-01-01,buy,BTC,1,1,-2,a,x", "fee_usd"),
    ],
)
def test_a_bad_row_names_its_line_and_field(row: str, field: str) -> None:
    with pytest.raises(RowError) as caught:
        parse("2024-01-01,buy,BTC,1,1,,a,ok\n" + row + "\n")
    assert (caught.value.line, caught.value.field) == (3, field)


def test_a_missing_column_is_refused_on_the_header_line() -> None:
    with pytest.raises(RowError) as caught:
        list(read_generic("timestamp,type,asset,amount,price_usd,account,tx_id\n"))
    assert (caught.value.line, caught.value.field) == (1, "fee_usd")


def test_form_8949_one_line_per_lot_short_term_first_in_cents() -> None:
    # 1 BTC 2022-01-01 at 10,000; 1 BTC 2024-01-01 at 30,000.01; 2024-06-01 sell 3 at 40,000 with a 3 USD fee:
    # proceeds 119,997 split by amount: 39,999 per BTC. FIFO: the 2022 lot (long, gain 29,999), the 2024 lot
    # (short, gain 9,998.99), and 1 BTC with no basis (short, gain 39,999).
    history = parse(
        "2022-01-01,buy,BTC,1,10000,,cb,a\n2024-01-01,buy,BTC,1,30000.01,,cb,b\n2024-06-01,sell,BTC,3,40000,3,cb,c\n"
    )
    text = form_8949_csv(compute(history, Method.FIFO).disposals)
    assert text.splitlines() == [
        ",".join(FORM_8949_COLUMNS),
        "1 BTC,2024-01-01,2024-06-01,39999.00,30000.01,9998.99,short,cb",
        "1 BTC (no basis),UNKNOWN,2024-06-01,39999.00,0.00,39999.00,short,cb",
        "1 BTC,2022-01-01,2024-06-01,39999.00,10000.00,29999.00,long,cb",
    ]
    assert schedule_d_csv(compute(history, Method.FIFO).disposals).splitlines() == [
        "line,term,proceeds,cost_basis,gain_loss",
        "1b,short,79998.00,30000.01,49997.99",
        "8b,long,39999.00,10000.00,29999.00",
        "total,all,119997.00,40000.01,79996.99",
    ]
    gains = gains_csv(compute(history, Method.FIFO).disposals).splitlines()
    assert len(gains) == 4 and gains[3].endswith(",short,yes")


def test_income_report_lists_each_event_at_market_value() -> None:
    history = parse("2024-03-01,income,ETH,0.5,3000.123,,lido,r1\n")
    assert income_csv(compute(history, Method.FIFO).income).splitlines()[1] == "2024-03-01,ETH,0.5,1500.06,lido,r1"
