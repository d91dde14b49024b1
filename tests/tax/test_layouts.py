"""Exchange exports in their real column layouts: found from the header, each row to transactions (or rejected with
its line, or ignored with a reason); missing prices from the market-data library, never zero."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.library import CandleLibrary
from marketpulse.tax.core import TxType, dedupe_key
from marketpulse.tax.csv_formats import RowError
from marketpulse.tax.layouts import decode
from marketpulse.tax.prices import LibraryPrices
from marketpulse.tax.service import prepare
from marketpulse.times import parse_time_ms

BINANCE_TRADES = (
    '"Date(UTC)","Pair","Side","Price","Executed","Amount","Fee"\n'
    '"2024-01-15 10:30:45","BTCUSDT","BUY","42000","0.5BTC","21000USDT","0.0005BTC"\n'
    '"2024-03-01 08:00:00","BTCUSDT","SELL","60000","0.2BTC","12000USDT","12USDT"\n'
    '"2024-03-01 08:00:00","BTCUSDT","SELL","60000","0.2BTC","12000USDT","12USDT"\n'
    '"2024-03-02 09:00:00","ETHBTC","BUY","0.05","2ETH","0.1BTC","0.002BNB"\n'
    '"2024-03-03 09:00:00","BTCUSDT","HOLD","1","1BTC","1USDT","0USDT"\n'
)

BINANCE_HISTORY = (
    '"User_ID","UTC_Time","Account","Operation","Coin","Change","Remark"\n'
    '"41879234","2024-01-08 09:12:00","Spot","Deposit","USDT","15000.00000000",""\n'
    '"41879234","2024-01-08 10:30:00","Spot","Transaction Buy","BTC","0.20000000",""\n'
    '"41879234","2024-01-08 10:30:00","Spot","Transaction Spend","USDT","-8000.00000000",""\n'
    '"41879234","2024-01-08 10:30:00","Spot","Transaction Fee","BTC","-0.00020000",""\n'
    '"41879234","2024-02-01 00:00:00","Earn","Simple Earn Flexible Interest","USDT","1.50000000",""\n'
    '"41879234","2024-02-02 00:00:00","Spot","Transfer Between Main and Funding Wallet","BTC","-0.1",""\n'
    '"41879234","2024-02-03 00:00:00","Spot","Fiat Deposit","EUR","500",""\n'
    '"41879234","2024-02-04 00:00:00","Spot","Withdraw","BTC","-0.1",""\n'
    '"41879234","2024-02-05 00:00:00","Spot","Mystery Operation","BTC","1",""\n'
)

COINBASE = (
    "\n"
    "Transactions\n"
    "User,Jane Doe,0f3c1e2a\n"
    "ID,Timestamp,Transaction Type,Asset,Quantity Transacted,Price Currency,Price at Transaction,Subtotal,"
    "Total (inclusive of fees and/or spread),Fees and/or Spread,Notes\n"
    "cb1,2024-01-05 10:00:00 UTC,Buy,SOL,10,USD,$100.00,$1000.00,$1010.00,$10.00,Bought 10 SOL for 1010 USD\n"
    "cb2,2024-02-05 10:00:00 UTC,Sell,SOL,-4,USD,$150.00,$600.00,$596.00,$4.00,Sold 4 SOL for 596 USD\n"
    "cb3,2024-03-05 10:00:00 UTC,Staking Income,SOL,0.5,USD,$120.00,$60.00,$60.00,$0.00,\n"
    "cb4,2024-04-05 10:00:00 UTC,Convert,SOL,-2,USD,$130.00,$260.00,$257.40,$2.60,Converted 2 SOL to 0.1 ETH\n"
    "cb5,2024-04-06 10:00:00 UTC,Send,SOL,1,USD,$130.00,,,,Sent to 9xQe\n"
    "cb6,2024-04-07 10:00:00 UTC,Deposit,USD,500,USD,$1.00,$500.00,$500.00,$0.00,\n"
    "cb7,2024-04-08 10:00:00 UTC,Buy,SOL,abc,USD,$130.00,,,,\n"
)

KRAKEN_LEDGERS = (
    '"txid","refid","time","type","subtype","aclass","asset","wallet","amount","fee","balance"\n'
    '"L1","D1","2024-01-05 12:00:00","deposit","","currency","ZUSD","spot / main",1000.0000,0,1000.0000\n'
    '"L2","T1","2024-01-06 08:20:02","trade","tradespot","currency","ZUSD","spot / main",-400.0000,1.0000,599.0\n'
    '"L3","T1","2024-01-06 08:20:02","trade","tradespot","currency","XXBT","spot / main",0.01,0,0.01\n'
    '"L4","S1","2024-02-01 00:00:00","staking","","currency","DOT.S","earn / bonded",0.25,0,0.25\n'
    '"L5","W1","2024-02-02 00:00:00","withdrawal","","currency","XXBT","spot / main",-0.005,0.0001,0.0049\n'
    '"L6","T2","2024-02-03 00:00:00","trade","tradespot","currency","XETH","spot / main",-1.0,0,0\n'
)

KRAKEN_TRADES = (
    '"txid","ordertxid","pair","time","type","ordertype","price","cost","fee","vol","margin","misc","ledgers"\n'
    '"TDNN5P-YWGRO-YF32BH","OS6ZQP-JLQZV-8QW9K2","XXBTZUSD","2024-03-19 19:43:31.6798","buy","limit",54054.0,'
    '100.00,0.18,0.00185,0.00000,"","LFTGXD-RWVPJ-J645GJ,LS4N2A-5DK5R-DRB7ZL"\n'
    '"TXXXXX-2","OXXXXX-2","XETHZUSD","2024-03-20 10:00:00","sell","market",3500.0,7000.00,18.2,2.0,0,"",""\n'
)


def kinds(rows: list) -> list[tuple[int, str, str, str, str | None, str]]:
    return [(r.line, r.tx.type.value, r.tx.asset, str(r.tx.amount),
             None if r.tx.price_usd is None else format(r.tx.price_usd.normalize(), "f"), str(r.tx.fee_usd))
            for r in rows]


def test_binance_trade_history_pairs_fee_assets_and_repeated_rows() -> None:
    out = decode(BINANCE_TRADES)
    assert out.layout == "binance-trades" and out.rows_read == 5
    assert kinds(out.rows) == [
        # Bought 0.5 BTC for 21,000 USDT, the fee taken from the BTC: the fee's value (21) is added to the basis,
        # the USDT spent is a sale at 1 USD, and the 0.0005 BTC fee is a disposal at the trade's price.
        (2, "buy", "BTC", "0.5", "42000", "21.000"),
        (2, "sell", "USDT", "21000", "1", "0"),
        (2, "fee", "BTC", "0.0005", "42000", "0"),
        # Sold for USDT with the fee in USDT: the fee comes off the BTC's proceeds; the USDT spent on it is disposed.
        (3, "buy", "USDT", "12000", "1", "0"),
        (3, "sell", "BTC", "0.2", "60000", "12"),
        (3, "fee", "USDT", "12", "1", "0"),
        (4, "buy", "USDT", "12000", "1", "0"),
        (4, "sell", "BTC", "0.2", "60000", "12"),
        (4, "fee", "USDT", "12", "1", "0"),
        (5, "buy", "ETH", "2", None, "0"),  # crypto for crypto: left for the market-data library
        (5, "sell", "BTC", "0.1", None, "0"),
        (5, "fee", "BNB", "0.002", None, "0"),
    ]
    # Two identical trades in one file are two transactions (distinct ids), and the ids are the same next time.
    assert dedupe_key(out.rows[4].tx) != dedupe_key(out.rows[7].tx)
    assert [r.tx.tx_id for r in decode(BINANCE_TRADES).rows] == [r.tx.tx_id for r in out.rows]
    assert [(e.line, e.field) for e in out.rejected] == [(6, "Side")]


def test_binance_transaction_history_pairs_trade_rows_and_ignores_internal_moves() -> None:
    out = decode(BINANCE_HISTORY)
    assert out.layout == "binance-history" and out.rows_read == 9
    assert kinds(out.rows) == [
        (2, "transfer_in", "USDT", "15000.00000000", None, "0"),
        (3, "buy", "BTC", "0.20000000", "40000", "8.00000000"),
        (3, "sell", "USDT", "8000.00000000", "1", "0"),
        (3, "fee", "BTC", "0.00020000", "40000", "0"),
        (6, "income", "USDT", "1.50000000", None, "0"),
        (9, "transfer_out", "BTC", "0.1", None, "0"),
    ]
    assert [i.line for i in out.ignored] == [7, 8]
    assert [(e.line, e.field) for e in out.rejected] == [(10, "Operation")]


def test_coinbase_report_with_its_title_lines() -> None:
    out = decode(COINBASE)
    assert out.layout == "coinbase" and out.rows_read == 7
    assert kinds(out.rows) == [
        (5, "buy", "SOL", "10", "100", "10.00"),
        (6, "sell", "SOL", "4", "150", "4.00"),
        (7, "income", "SOL", "0.5", "120", "0"),
        (8, "buy", "ETH", "0.1", "2600", "2.60"),  # Converted 2 SOL (subtotal $260) to 0.1 ETH; the spread is a fee
        (8, "sell", "SOL", "2", "130", "0"),
        (9, "transfer_out", "SOL", "1", None, "0"),
    ]
    assert [i.line for i in out.ignored] == [10]  # a USD deposit: cash
    assert [(e.line, e.field) for e in out.rejected] == [(11, "Quantity Transacted")]


def test_kraken_ledgers_pair_trades_by_refid() -> None:
    out = decode(KRAKEN_LEDGERS)
    assert out.layout == "kraken-ledgers"
    assert kinds(out.rows) == [
        (3, "buy", "BTC", "0.01", "40000", "1.0000"),  # 400 USD + 1 USD fee on the USD leg
        (5, "income", "DOT", "0.25", None, "0"),
        (6, "transfer_out", "BTC", "0.005", None, "0"),
        (6, "fee", "BTC", "0.0001", None, "0"),
    ]
    assert {(r.line, r.tx.type) for r in out.rows} >= {(3, TxType.BUY), (5, TxType.INCOME), (6, TxType.TRANSFER_OUT)}
    assert [i.line for i in out.ignored] == [2]
    assert [(e.line, e.field) for e in out.rejected] == [(7, "refid")]  # one leg of a trade only


def test_kraken_trades() -> None:
    out = decode(KRAKEN_TRADES)
    assert out.layout == "kraken-trades"
    assert kinds(out.rows) == [
        (2, "buy", "BTC", "0.00185", format((Decimal("100.00") / Decimal("0.00185")).normalize(), "f"), "0.18"),
        (3, "sell", "ETH", "2.0", "3500", "18.2"),
    ]


def test_an_unknown_header_names_the_file() -> None:
    with pytest.raises(RowError) as caught:
        decode("when,what\n1,2\n")
    assert (caught.value.line, caught.value.field) == (1, "file")


def library_with(root: Path, symbol: str, minute_ms: int, close: float) -> None:
    frame = CandleFrame(np.array([minute_ms, minute_ms + 60_000], dtype=np.int64), *(np.array([close, close + 1])
                        for _ in range(4)), np.array([1.0, 1.0]), symbol, "1m")
    CandleLibrary(root).append("binance", symbol, "1m", frame)


def test_missing_prices_come_from_the_candle_at_the_transactions_minute(tmp_path: Path) -> None:
    minute = parse_time_ms("2024-03-02T09:00:00Z")
    library_with(tmp_path, "ETHUSDT", minute, 3412.5)
    library_with(tmp_path, "BTCUSDT", minute, 62000.25)
    library_with(tmp_path, "USDCUSD", minute, 0.9991)
    text = ("timestamp,type,asset,amount,price_usd,fee_usd,account,tx_id\n"
            "2024-03-02T09:00:42Z,buy,ETH,2,,,a,1\n"
            "2024-03-02T09:01:00Z,sell,BTC,0.1,,,a,2\n"  # the next minute's candle
            "2024-03-02T09:00:00Z,income,USDC,10,,,a,3\n"  # a stablecoin whose market says otherwise
            "2024-03-02T09:00:00Z,income,USDT,10,,,a,4\n"  # a stablecoin without a market: 1 USD
            "2024-03-02T09:05:00Z,sell,ETH,1,,,a,5\n")  # no candle that minute: rejected, never zero
    ready = prepare(text, LibraryPrices(tmp_path))
    assert [(r.line, str(r.tx.price_usd)) for r in ready.rows] == [
        (2, "3412.5"), (3, "62001.25"), (4, "0.9991"), (5, "1")]
    assert [(r.line, r.field) for r in ready.rejected] == [(6, "price_usd")]
    assert "market-data library" in ready.rejected[0].reason


def test_a_trade_is_imported_whole_or_not_at_all(tmp_path: Path) -> None:
    ready = prepare(BINANCE_TRADES, LibraryPrices(tmp_path))  # an empty library: ETHBTC can't be priced
    assert {r.line for r in ready.rows} == {2, 3, 4}
    assert [(r.line, r.field) for r in ready.rejected] == [(5, "price_usd"), (6, "Side")]
