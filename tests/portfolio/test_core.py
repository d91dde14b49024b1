"""The portfolio's pure rules, hand-worked: sealed keys, exchange records → tax transactions, valuation with cost
basis, snapshot retention, and performance (a deposit is not a gain; IRR; drawdown; BTC)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketpulse.portfolio import core
from marketpulse.portfolio.core import Holding, Point, Vault
from marketpulse.tax.core import TxType

T = 1_760_000_000_000
D = Decimal


def prices(table: dict[str, str]) -> core.PriceOf:
    return lambda asset, _ms: D(table[asset]) if asset in table else None


def test_keys_are_sealed_with_the_settings_key_and_shown_masked() -> None:
    vault = Vault("a long random secret")
    sealed = vault.seal("ABCDEFGH12345678")
    assert "ABCDEFGH" not in sealed and sealed != vault.seal("ABCDEFGH12345678")  # a fresh IV each time
    assert Vault("a long random secret").open(sealed) == "ABCDEFGH12345678"  # a restart reads it
    with pytest.raises(ValueError, match="another key"):
        Vault("another secret").open(sealed)
    assert core.mask("ABCDEFGH12345678") == "ABCD…5678"
    assert "short" not in core.mask("short-key")


def test_a_buy_against_a_stablecoin_is_one_buy_with_its_fee() -> None:
    trade = {"symbol": "BTC/USDT", "timestamp": T, "id": "7", "side": "buy", "amount": 0.5, "price": 60000.0,
             "cost": 30000.0, "fee": {"cost": 0.03, "currency": "USDT"}}
    [tx] = core.trade_transactions(trade, "bin", prices({}))
    assert (tx.type, tx.asset, tx.amount, tx.price_usd, tx.fee_usd) == (TxType.BUY, "BTC", D("0.5"), D("60000.0"),
                                                                        D("0.03"))
    assert (tx.account, tx.tx_id, tx.timestamp_ms) == ("bin", "7", T)


def test_a_sell_against_btc_is_also_a_buy_of_btc_and_a_bnb_fee_is_a_disposal() -> None:
    trade = {"symbol": "ETH/BTC", "timestamp": T, "id": "9", "side": "sell", "amount": 2, "price": 0.05,
             "cost": 0.1, "fee": {"cost": 0.01, "currency": "BNB"}}
    txs = core.trade_transactions(trade, "bin", prices({"BTC": "60000", "BNB": "600"}))
    sell, buy, fee = txs
    assert (sell.type, sell.asset, sell.amount, sell.price_usd, sell.fee_usd) == (
        TxType.SELL, "ETH", D("2"), D("3000.00"), D("6.00"))  # 0.05 BTC × 60000; the fee's USD value
    assert (buy.type, buy.asset, buy.amount, buy.price_usd) == (TxType.BUY, "BTC", D("0.1"), D("60000"))
    assert (fee.type, fee.asset, fee.amount, fee.price_usd) == (TxType.FEE, "BNB", D("0.01"), D("600"))


def test_an_unpriced_quote_leaves_the_price_unknown_never_zero() -> None:
    trade = {"symbol": "ABC/XYZ", "timestamp": T, "id": "1", "side": "buy", "amount": 1, "price": 2, "fee": None}
    buy, sell = core.trade_transactions(trade, "bin", prices({}))
    assert buy.price_usd is None and sell.price_usd is None


def test_deposits_withdrawals_and_funding() -> None:
    dep = {"type": "deposit", "status": "ok", "currency": "ETH", "amount": 1.5, "timestamp": T, "txid": "0xaa"}
    wd = {"type": "withdrawal", "status": "ok", "currency": "ETH", "amount": 1, "timestamp": T, "txid": "0xbb",
          "fee": {"cost": 0.001, "currency": "ETH"}}
    pending = dict(dep, status="pending")
    price = prices({"ETH": "3000"})
    [tin] = core.transfer_transactions(dep, "bin", price)
    out, fee = core.transfer_transactions(wd, "bin", price)
    assert (tin.type, tin.amount, tin.price_usd, tin.tx_id) == (TxType.TRANSFER_IN, D("1.5"), D("3000"), "0xaa")
    assert (out.type, out.tx_id, fee.type, fee.amount) == (TxType.TRANSFER_OUT, "0xbb", TxType.FEE, D("0.001"))
    assert core.transfer_transactions(pending, "bin", price) == []
    [got] = core.funding_transactions({"code": "USDT", "amount": 1.25, "timestamp": T, "id": "5"}, "bin", price)
    [paid] = core.funding_transactions({"code": "USDT", "amount": -0.5, "timestamp": T, "id": "6"}, "bin", price)
    assert (got.type, got.amount, got.price_usd) == (TxType.INCOME, D("1.25"), D("1"))
    assert (paid.type, paid.amount) == (TxType.FEE, D("0.5"))
    assert core.net_flow_usd([tin, out]) == pytest.approx(1500.0)


def test_value_by_asset_account_category_with_pnl_over_what_the_lots_cover() -> None:
    holdings = [Holding("a", "BTC", D("1")), Holding("b", "BTC", D("1")), Holding("b", "USDT", D("500")),
                Holding("b", "NOPE", D("3"))]
    v = core.value(holdings, {"BTC": D("60000"), "USDT": D("1"), "NOPE": None},
                   {"BTC": (D("1.5"), D("45000"))})  # lots explain 1.5 BTC costing 45,000
    assert v.total_usd == pytest.approx(120_500)
    assert v.by_account == {"a": pytest.approx(60_000), "b": pytest.approx(60_500)}
    assert v.by_category == {"bitcoin": pytest.approx(120_000), "stablecoin": pytest.approx(500), "altcoin": 0.0}
    btc = v.by_asset[0]
    assert (btc.asset, btc.cost_basis_usd, btc.unrealized_pnl_usd) == ("BTC", 45_000, 45_000)  # 1.5 × 60k − 45k
    assert v.unpriced == ["NOPE"] and v.unrealized_pnl_usd == pytest.approx(45_000)


def test_snapshots_past_90_days_keep_the_last_of_each_day() -> None:
    now = 200 * core.DAY_MS
    old_day = 100 * core.DAY_MS
    times = [old_day + h * core.HOUR_MS for h in range(24)] + [now - core.HOUR_MS * h for h in range(48)]
    gone = core.expired_snapshots(times, now)
    assert gone == [old_day + h * core.HOUR_MS for h in range(23)]  # 23:00 stays; the recent hours all stay


def test_a_deposit_is_not_performance_and_drawdown_follows_the_index() -> None:
    points = [Point(0, 1000, 0, 50_000), Point(core.DAY_MS, 1100, 0, 55_000),  # +10 %
              Point(2 * core.DAY_MS, 1990, 1000, 55_000),  # 1000 deposited; the 1100 fell to 990
              Point(3 * core.DAY_MS, 2189, 0, 60_000)]  # +10 %
    perf = core.performance(points)
    assert perf.time_weighted_return == pytest.approx(1.1 * 0.9 * 1.1 - 1)  # not the 99 % the deposit adds
    assert perf.max_drawdown == pytest.approx(0.1)  # the index fell from 1.1 to 0.99
    assert perf.btc_return == pytest.approx(0.2)
    assert perf.excess_vs_btc == pytest.approx(perf.time_weighted_return - 0.2)
    assert perf.benchmark[-1] == pytest.approx(1200)  # the first 1000 held in BTC
    # IRR: 1000(1+r) + 1000(1+r)^(1/3) = 2189 over the range
    r = perf.money_weighted_return
    assert r is not None and 1000 * (1 + r) + 1000 * (1 + r) ** (1 / 3) == pytest.approx(2189)


def test_buckets_keep_each_intervals_last_value_and_sum_its_flows() -> None:
    h = core.HOUR_MS
    points = [Point(0, 1, 5, None), Point(h, 2, 7, None), Point(25 * h, 3, 1, None)]
    assert core.bucket(points, 24 * h) == [Point(h, 2, 12, None), Point(25 * h, 3, 1, None)]
