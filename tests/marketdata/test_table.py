"""The live market table merges tickers, mark prices, open interest and whole rows without losing fields."""

from __future__ import annotations

from marketpulse.marketdata.models import MarketRow, MarkPrice, Ticker24h
from marketpulse.marketdata.table import MarketTable


def _ticker(sym: str, price: float, t: int = 1) -> Ticker24h:
    return Ticker24h(sym, t, price, price * 0.9, price * 1.1, price * 0.8, 11.1, 5.0, 5.0 * price)


def test_funding_and_oi_seen_before_the_ticker_are_kept() -> None:
    table = MarketTable({"BTCUSDT": 1})
    table.apply_mark_prices([MarkPrice("BTCUSDT", 1, 100.0, 100.0, 0.0001, 0)])
    table.apply_open_interest({"BTCUSDT": 5e9})
    (row,) = table.apply_tickers([_ticker("BTCUSDT", 100.0)])
    assert (row.funding_rate, row.open_interest_usd, row.price_precision) == (0.0001, 5e9, 1)


def test_apply_rows_updates_in_place_and_keeps_fields_a_row_leaves_out() -> None:
    table = MarketTable()
    table.apply_rows([MarketRow("ETHUSDT", 1, 3000.0, 1.0, 9e9, funding_rate=0.0002, open_interest_usd=7e9,
                                price_precision=2)])
    first = table.get("ETHUSDT")
    (row,) = table.apply_rows([MarketRow("ETHUSDT", 2, 3100.0, 4.3, 9.5e9)])
    assert row is first  # the same object: consumers holding it see the update
    assert (row.time, row.price, row.change_pct_24h, row.quote_volume_24h) == (2, 3100.0, 4.3, 9.5e9)
    assert (row.funding_rate, row.open_interest_usd, row.price_precision) == (0.0002, 7e9, 2)


def test_open_interest_update_reaches_existing_rows_only() -> None:
    table = MarketTable()
    table.apply_tickers([_ticker("SOLUSDT", 200.0)])
    table.apply_open_interest({"SOLUSDT": 2e9, "XRPUSDT": 1e9})
    assert table.get("SOLUSDT").open_interest_usd == 2e9  # type: ignore[union-attr]
    assert table.get("XRPUSDT") is None
    (xrp,) = table.apply_tickers([_ticker("XRPUSDT", 2.0)])
    assert xrp.open_interest_usd == 1e9
