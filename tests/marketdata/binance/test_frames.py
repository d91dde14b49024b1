"""Binance wire decoding (pure): frames, REST payloads, precision, closed-candle selection, backoff delays."""

from __future__ import annotations

import json

import pytest

from fakes.binance_server import kline_row, mark_price_payload, symbol_info, ticker_payload
from marketpulse.marketdata.binance.backoff import Backoff
from marketpulse.marketdata.binance.frames import (
    FrameRejected,
    LiquidationBatch,
    MarkPriceBatch,
    TickerBatch,
    closed_candles,
    decimals_of,
    decode_frame,
    parse_exchange_info,
    parse_klines,
    parse_open_interest,
    parse_premium_index,
)
from marketpulse.marketdata.binance.stream import market_stream_url
from marketpulse.marketdata.models import Candle, Liquidation

T0 = 1_760_126_400_000


def frame(stream: str, data: object) -> str:
    return json.dumps({"stream": stream, "data": data})


def binance_bytes(stream: str, data: object) -> bytes:
    """As Binance sends it: compact, "stream" first (the decoder's one-pass path for ticker frames)."""
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


def test_ticker_frame_decodes_to_normalized_tickers_ignoring_unknown_fields() -> None:
    payload = ticker_payload("BTCUSDT", T0, last=121_000.5, open_=120_000.0, high=122_000.0, low=119_500.0,
                             volume=150_000.0, quote_volume=18_000_000_000.0)
    payload["zz"] = {"new": "field"}
    batch = decode_frame(frame("!ticker@arr", [payload]))
    assert isinstance(batch, TickerBatch)
    (t,) = batch.tickers
    assert (t.symbol, t.time, t.last_price, t.open_price, t.high, t.low) == (
        "BTCUSDT", T0, 121_000.5, 120_000.0, 122_000.0, 119_500.0)
    assert t.change_pct == pytest.approx(0.834)
    assert (t.volume, t.quote_volume) == (150_000.0, 18_000_000_000.0)


def test_mark_price_frame_decodes_funding_and_tolerates_delivery_contracts_empty_rate() -> None:
    perp = mark_price_payload("ETHUSDT", T0, mark=4321.5, funding_rate="-0.00012500")
    delivery = mark_price_payload("ETHUSDT_260327", T0, mark=4400.0, funding_rate="")
    batch = decode_frame(frame("!markPrice@arr@1s", [perp, delivery]).encode())
    assert isinstance(batch, MarkPriceBatch)
    eth, eth_q = batch.marks
    assert (eth.symbol, eth.mark_price, eth.funding_rate, eth.next_funding_time) == (
        "ETHUSDT", 4321.5, -0.000125, perp["T"])
    assert eth_q.funding_rate == 0.0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json at all", "invalid_json"),
        ('{"stream": "!ticker@arr", "data": [', "invalid_json"),
        ('{"result": null, "id": 1}', "invalid_schema"),  # a SUBSCRIBE answer, not a stream frame
        (frame("!ticker@arr", [{"e": "24hrTicker", "s": "BTCUSDT"}]), "invalid_schema"),  # fields missing
        (frame("!ticker@arr", [{"e": "somethingElse", "E": 1, "s": "X"}]), "invalid_schema"),
        (frame("!ticker@arr", {"e": "24hrTicker"}), "invalid_schema"),  # object where Binance sends a list
        (frame("btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT"}), "unknown_stream"),
    ],
)
def test_unusable_frames_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(FrameRejected) as excinfo:
        decode_frame(raw)
    assert excinfo.value.reason == reason


def test_compact_bytes_other_key_orders_and_str_decode_alike() -> None:
    payload = ticker_payload("ETHUSDT", T0, last=4321.07, open_=4400.0, high=4450.0, low=4300.0, volume=3e6,
                             quote_volume=1.3e10)
    data_first = json.dumps({"data": [payload], "stream": "!ticker@arr"}).encode()
    decoded = [decode_frame(raw) for raw in (binance_bytes("!ticker@arr", [payload]), data_first,
                                              frame("!ticker@arr", [payload]))]
    assert decoded[0] == decoded[1] == decoded[2]
    bad = {**payload, "q": None}
    with pytest.raises(FrameRejected, match="invalid_schema"):
        decode_frame(binance_bytes("!ticker@arr", [bad]))
    with pytest.raises(FrameRejected, match="invalid_json"):
        decode_frame(binance_bytes("!ticker@arr", [payload])[:-5])


def test_a_bad_number_rejects_the_frame() -> None:
    bad = ticker_payload("BTCUSDT", T0, last=1.0, open_=1.0, high=1.0, low=1.0, volume=1.0, quote_volume=1.0)
    bad["c"] = "12,5"
    with pytest.raises(FrameRejected, match="invalid_schema"):
        decode_frame(frame("!ticker@arr", [bad]))


@pytest.mark.parametrize(("tick", "decimals"), [("0.10", 1), ("0.0001000", 4), ("1", 0), ("10", 0), ("0.00000100", 6)])
def test_price_precision_is_the_tick_sizes_decimals(tick: str, decimals: int) -> None:
    assert decimals_of(tick) == decimals


def test_exchange_info_keeps_trading_usdt_perpetuals_with_their_precision() -> None:
    raw = json.dumps({"timezone": "UTC", "symbols": [
        symbol_info("BTCUSDT", "0.10", "PERPETUAL", "USDT", "TRADING"),
        symbol_info("1000PEPEUSDT", "0.0000001", "PERPETUAL", "USDT", "TRADING"),
        symbol_info("BTCUSDT_260327", "0.10", "CURRENT_QUARTER", "USDT", "TRADING"),
        symbol_info("ETHUSDC", "0.01", "PERPETUAL", "USDC", "TRADING"),
        symbol_info("OLDUSDT", "0.001", "PERPETUAL", "USDT", "SETTLING"),
    ]}).encode()
    assert parse_exchange_info(raw).precisions == {"BTCUSDT": 1, "1000PEPEUSDT": 7}


def test_klines_rows_become_candles_and_only_closed_new_ones_are_selected() -> None:
    raw = json.dumps([kline_row(T0 + i * 60_000, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0, 1005.0 + i)
                      for i in range(3)]).encode()
    candles = parse_klines(raw, "BTCUSDT")
    assert candles[1] == Candle("BTCUSDT", "1m", T0 + 60_000, 101.0, 102.0, 100.0, 101.5, 10.0, 1006.0)
    now = T0 + 3 * 60_000 - 1  # the third minute is still open
    assert [c.open_time for c in closed_candles(candles, now, after_open_time=-1)] == [T0, T0 + 60_000]
    assert [c.open_time for c in closed_candles(candles, now + 1, after_open_time=T0)] == [T0 + 60_000, T0 + 120_000]


def test_open_interest_in_usd_is_contracts_times_mark() -> None:
    raw = b'{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}'
    assert parse_open_interest(raw, mark_price=100_000.0).usd == pytest.approx(1_065_950_900.0)
    premium = b'[{"symbol":"BTCUSDT","markPrice":"11793.63104562","indexPrice":"11781.8","lastFundingRate":""}]'
    assert parse_premium_index(premium) == {"BTCUSDT": 11793.63104562}


def test_market_stream_url_uses_the_market_path() -> None:
    assert market_stream_url("wss://fstream.binance.com/", ("!ticker@arr", "!markPrice@arr@1s")) == (
        "wss://fstream.binance.com/market/stream?streams=!ticker@arr/!markPrice@arr@1s")


def test_backoff_doubles_from_one_to_thirty_seconds_and_resets() -> None:
    backoff = Backoff(rng=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_backoff_jitter_only_shortens_within_its_fraction() -> None:
    backoff = Backoff(jitter=0.2, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(3)] == pytest.approx([0.8, 1.6, 3.2])


def test_force_order_frame_decodes_to_a_liquidation_of_the_position_side() -> None:
    # Binance's documented example (numbers as strings), in a combined-stream envelope.
    raw = frame("!forceOrder@arr", {"e": "forceOrder", "E": 1568014460893, "o": {
        "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9910",
        "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}})
    batch = decode_frame(raw.encode())
    assert isinstance(batch, LiquidationBatch)
    assert batch.liquidations == [Liquidation("BTCUSDT", "long", 9910.0, 0.014, 138.74, 1568014460893)]
    short = frame("!forceOrder@arr", {"e": "forceOrder", "E": 2, "o": {
        "s": "ETHUSDT", "S": "BUY", "q": "2", "p": "4000", "ap": "0", "z": "0", "T": 1}})
    assert decode_frame(short) == LiquidationBatch([Liquidation("ETHUSDT", "short", 4000.0, 2.0, 8000.0, 1)])
    nonsense = frame("!forceOrder@arr", {"e": "forceOrder", "E": 2, "o": {"s": "X", "S": "HOLD", "q": "1", "p": "1"}})
    assert decode_frame(nonsense) == LiquidationBatch([])
    with pytest.raises(FrameRejected):
        decode_frame(frame("!forceOrder@arr", {"e": "forceOrder", "E": 2, "o": {"s": "X", "q": "x"}}))
