"""The paper account's books and the fill rules (the backtest engine's own, called through `matching`)."""

from __future__ import annotations

import pytest

from marketpulse.trading.paper.account import Book
from marketpulse.trading.paper.matching import Bar, match
from marketpulse.trading.paper.orders import OrderSpec, OrderType, Side, TimeInForce, expires_at_ms, is_expired

BAR = Bar(open_time=0, open=100.0, high=110.0, low=95.0, close=105.0)


def test_long_round_trip_realizes_gross_pnl_and_charges_fees_on_the_balance() -> None:
    book = Book(cash=1_000.0)
    assert book.apply_fill("BTCUSDT", 2.0, 100.0, 0.5, 1) == 0.0
    book.marks["BTCUSDT"] = 110.0
    assert book.unrealized_pnl() == pytest.approx(20.0)
    assert book.equity() == pytest.approx(1_000.0 - 0.5 + 20.0)
    assert book.apply_fill("BTCUSDT", -1.0, 120.0, 0.25, 2) == pytest.approx(20.0)  # half closed
    assert book.positions[("BTCUSDT", "")].quantity == 1.0 and book.positions[("BTCUSDT", "")].avg_price == 100.0
    assert book.apply_fill("BTCUSDT", -1.0, 90.0, 0.25, 3) == pytest.approx(-10.0)
    assert ("BTCUSDT", "") not in book.positions
    assert book.realized_pnl == pytest.approx(10.0) and book.fees_paid == pytest.approx(1.0)
    assert book.cash == pytest.approx(1_009.0) and book.equity() == pytest.approx(1_009.0)


def test_adding_averages_and_a_flip_opens_the_remainder_at_the_fill_price() -> None:
    book = Book(cash=0.0)
    book.apply_fill("ETHUSDT", 1.0, 100.0, 0.0, 1)
    book.apply_fill("ETHUSDT", 1.0, 120.0, 0.0, 2)
    assert book.positions[("ETHUSDT", "")].avg_price == pytest.approx(110.0)
    realized = book.apply_fill("ETHUSDT", -3.0, 130.0, 0.0, 3)
    assert realized == pytest.approx(40.0)  # 2 × (130 - 110)
    short = book.positions[("ETHUSDT", "")]
    assert (short.quantity, short.avg_price, short.opened_at_ms) == (-1.0, 130.0, 3)
    book.marks["ETHUSDT"] = 120.0
    assert book.unrealized_pnl() == pytest.approx(10.0)  # a short gains as the price falls


def test_market_orders_fill_at_the_open_with_slippage_against_the_trader() -> None:
    buy = match(OrderType.MARKET, Side.BUY, None, TimeInForce.GTC, BAR, slippage_bps=10)
    sell = match(OrderType.MARKET, Side.SELL, None, TimeInForce.GTC, BAR, slippage_bps=10)
    assert buy is not None and buy.price == pytest.approx(100.1) and buy.taker
    assert sell is not None and sell.price == pytest.approx(99.9)


@pytest.mark.parametrize(
    ("kind", "side", "price", "expected"),
    [
        (OrderType.LIMIT, Side.BUY, 97.0, 97.0),  # the low reaches it
        (OrderType.LIMIT, Side.BUY, 101.0, 100.0),  # already below at the open: the better open
        (OrderType.LIMIT, Side.BUY, 94.0, None),  # never reached
        (OrderType.LIMIT, Side.SELL, 108.0, 108.0),
        (OrderType.STOP, Side.BUY, 108.0, 108.0),  # triggered on the way up
        (OrderType.STOP, Side.BUY, 99.0, 100.0),  # gapped through: the worse open
        (OrderType.STOP, Side.SELL, 96.0, 96.0),
        (OrderType.STOP, Side.SELL, 90.0, None),
    ],
)
def test_resting_orders(kind: OrderType, side: Side, price: float, expected: float | None) -> None:
    quote = match(kind, side, price, TimeInForce.GTC, BAR, slippage_bps=0)
    assert (None if quote is None else quote.price) == expected
    if quote is not None:
        assert quote.taker is (kind is OrderType.STOP)


def test_ioc_must_be_marketable_at_the_open() -> None:
    assert match(OrderType.LIMIT, Side.BUY, 97.0, TimeInForce.IOC, BAR, 0) is None  # only the low touched it
    quote = match(OrderType.LIMIT, Side.BUY, 101.0, TimeInForce.IOC, BAR, 0)
    assert quote is not None and quote.price == 100.0


def test_order_spec_validation_and_day_expiry() -> None:
    with pytest.raises(ValueError, match="limit_price"):
        OrderSpec("BTCUSDT", Side.BUY, OrderType.LIMIT, 1.0)
    with pytest.raises(ValueError, match="stop_price"):
        OrderSpec("BTCUSDT", Side.BUY, OrderType.MARKET, 1.0, stop_price=5.0)
    placed = 1_760_126_400_000  # 20:00 UTC
    end = expires_at_ms(TimeInForce.DAY, placed)
    assert end == 1_760_140_800_000
    assert not is_expired(end, end - 60_000) and is_expired(end, end)
    assert expires_at_ms(TimeInForce.GTC, placed) is None
