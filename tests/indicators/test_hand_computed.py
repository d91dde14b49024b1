"""Tiny inputs whose answers are worked out by hand, plus the NaN / short-input / validation contract."""

from __future__ import annotations

import numpy as np
import pytest

import marketpulse.indicators as ind

NAN = np.nan


def close_to(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, np.array(expected, dtype=float), rtol=0, atol=1e-12, equal_nan=True)


def test_sma_ema_rma_by_hand() -> None:
    x = [2.0, 4.0, 6.0, 8.0, 4.0]
    close_to(ind.sma(x, 3), [NAN, NAN, 4.0, 6.0, 6.0])
    # EMA(3): k = 0.5, seeded with SMA(2, 4, 6) = 4; then 4 + 0.5 * (8 - 4) = 6; 6 + 0.5 * (4 - 6) = 5.
    close_to(ind.ema(x, 3), [NAN, NAN, 4.0, 6.0, 5.0])
    # RMA(3): seed 4; (4 * 2 + 8) / 3 = 16/3; (16/3 * 2 + 4) / 3 = 44/9.
    close_to(ind.rma(x, 3), [NAN, NAN, 4.0, 16 / 3, 44 / 9])


def test_period_one_is_identity() -> None:
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    for f in (ind.sma, ind.ema, ind.rma):
        close_to(f(x, 1), list(x))


def test_leading_nans_are_skipped_and_later_nans_leave_a_hole() -> None:
    close_to(ind.ema([NAN, NAN, 2.0, 4.0, 6.0, 8.0], 3), [NAN, NAN, NAN, NAN, 4.0, 6.0])
    # The hole at index 3 is NaN; the recursion resumes from 4 as if the bar were absent: 4 + 0.5 * (8 - 4) = 6.
    close_to(ind.ema([2.0, 4.0, 6.0, NAN, 8.0], 3), [NAN, NAN, 4.0, NAN, 6.0])
    close_to(ind.sma([1.0, 2.0, NAN, 4.0, 5.0, 6.0], 2), [NAN, 1.5, NAN, NAN, 4.5, 5.5])
    # Composition works because of the leading-NaN rule.
    assert np.isfinite(ind.ema(ind.sma(np.arange(20.0), 5), 3)[-1])


def test_true_range_and_both_atr_seedings_by_hand() -> None:
    high = [10.0, 12.0, 13.0]
    low = [8.0, 10.5, 7.0]
    close = [9.0, 11.0, 8.0]
    # bar 1 gaps up: |12 - 9| = 3 beats 12 - 10.5; bar 2: 13 - 7 = 6.
    close_to(ind.true_range(high, low, close), [NAN, 3.0, 6.0])
    close_to(ind.true_range(high, low, close, first_bar_high_low=True), [2.0, 3.0, 6.0])
    close_to(ind.atr(high, low, close, 2), [NAN, NAN, 4.5])  # TA-Lib: mean of TR[1..2]
    close_to(ind.tv_atr(high, low, close, 2), [NAN, 2.5, (2.5 + 6.0) / 2])  # TradingView: mean of TR[0..1], then RMA


def test_rsi_by_hand() -> None:
    # changes +2, -1, +3: avg gain (2 + 3) / 3, avg loss 1 / 3 -> RSI = 100 * 5 / 6.
    close_to(ind.rsi([10.0, 12.0, 11.0, 14.0], 3), [NAN, NAN, NAN, 500 / 6])
    close_to(ind.rsi([1.0, 2.0, 3.0, 4.0], 2), [NAN, NAN, 100.0, 100.0])
    close_to(ind.rsi([5.0, 5.0, 5.0, 5.0], 2), [NAN, NAN, 0.0, 0.0])  # no movement: 0, as TA-Lib


def test_bollinger_by_hand() -> None:
    upper, middle, lower = ind.bollinger([1.0, 2.0, 3.0, 4.0], period=4, k=2.0)
    std = np.sqrt(1.25)  # population: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 over 4
    close_to(middle, [NAN, NAN, NAN, 2.5])
    close_to(upper, [NAN, NAN, NAN, 2.5 + 2 * std])
    close_to(lower, [NAN, NAN, NAN, 2.5 - 2 * std])


def test_heikin_ashi_by_hand() -> None:
    o, h, lo, c = [10.0, 11.0, 12.0], [12.0, 13.0, 12.5], [9.0, 10.0, 9.5], [11.0, 12.0, 10.0]
    ha_open, ha_high, ha_low, ha_close = ind.heikin_ashi(o, h, lo, c)
    close_to(ha_close, [10.5, 11.5, 11.0])  # (o + h + l + c) / 4
    close_to(ha_open, [10.5, 10.5, 11.0])  # (10 + 11) / 2, then (prev HA open + prev HA close) / 2
    close_to(ha_high, [12.0, 13.0, 12.5])
    close_to(ha_low, [9.0, 10.0, 9.5])


def test_vwap_by_hand_with_session_reset() -> None:
    high, low, close = [11.0, 13.0, 20.0, 22.0], [9.0, 11.0, 18.0, 20.0], [10.0, 12.0, 19.0, 21.0]
    volume = [1.0, 3.0, 2.0, 2.0]  # typical prices 10, 12, 19, 21
    close_to(ind.vwap(high, low, close, volume), [10.0, 11.5, (10 + 36 + 38) / 6, (10 + 36 + 38 + 42) / 8])
    starts = np.array([True, False, True, False])
    close_to(ind.vwap(high, low, close, volume, anchor=starts), [10.0, 11.5, 19.0, 20.0])
    close_to(ind.vwap(high, low, close, [0.0, 0.0, 1.0, 1.0]), [NAN, NAN, 19.0, 20.0])  # no volume yet: NaN


def test_session_starts_on_utc_days() -> None:
    day = 86_400_000
    t = np.array([day - 120_000, day - 60_000, day, day + 60_000, 2 * day])
    np.testing.assert_array_equal(ind.session_starts(t), [True, False, True, False, True])


def test_crossover_and_crossunder() -> None:
    a = [1.0, 2.0, 3.0, 3.0, 2.0, NAN, 4.0]
    b = [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    # Touching (2 == 2) then rising counts as a crossover, as in Pine; a NaN bar blocks the next cross.
    np.testing.assert_array_equal(ind.crossover(a, b), [False, False, True, False, False, False, False])
    np.testing.assert_array_equal(ind.crossunder(a, 2.0), [False, False, False, False, False, False, False])
    np.testing.assert_array_equal(ind.crossunder([3.0, 1.0], 2.0), [False, True])


def test_supertrend_by_hand() -> None:
    high = [11.0, 12.0, 13.0, 15.0, 14.0]
    low = [9.0, 10.0, 11.0, 13.0, 10.0]
    close = [10.0, 11.0, 12.5, 14.5, 10.5]
    # tv_atr(2): TR 2, 2, 2, 2.5, 4.5 -> ATR nan, 2, 2, 2.25, 3.375. With multiplier 1: bar 1 starts in the
    # downtrend on its upper band 13; bar 3 closes above 13 -> uptrend on its lower band 14 - 2.25; bar 4 closes
    # under that lower band -> downtrend on the fresh upper band 12 + 3.375.
    line, direction = ind.supertrend(high, low, close, period=2, multiplier=1.0)
    close_to(line, [NAN, 13.0, 13.0, 11.75, 15.375])
    close_to(direction, [NAN, 1.0, 1.0, -1.0, 1.0])


def test_ut_bot_by_hand() -> None:
    high = [11.0, 12.0, 11.5, 11.0, 10.0, 13.0]
    low = [9.0, 10.0, 10.5, 8.0, 8.0, 11.0]
    close = [10.0, 11.0, 11.0, 8.5, 9.8, 12.5]
    # tv_atr(1) is the true range: 2, 2, 1, 3, 2, 3.2. The stop trails the close from below (8, 9, 10), the close
    # falls through it at bar 3 (sell; stop jumps to 8.5 + 3), ratchets down (min(11.5, 11.8)), and the close
    # rises through it at bar 5 (buy; stop jumps to 12.5 - 3.2).
    stop, buy, sell = ind.ut_bot(close, high, low, close, key_value=1.0, atr_period=1)
    close_to(stop, [8.0, 9.0, 10.0, 11.5, 11.5, 9.3])
    np.testing.assert_array_equal(buy, [False, False, False, False, False, True])
    np.testing.assert_array_equal(sell, [False, False, False, True, False, False])


def test_too_short_inputs_give_all_nan_not_errors() -> None:
    short = np.array([1.0, 2.0, 3.0])
    for out in (ind.sma(short, 5), ind.ema(short, 5), ind.rma(short, 5), ind.rsi(short, 5), ind.rolling_std(short, 5)):
        assert out.shape == (3,) and np.isnan(out).all()
    for out in (*ind.macd(short), *ind.bollinger(short), ind.atr(short, short, short, 5)):
        assert out.shape == (3,) and np.isnan(out).all()
    line, direction = ind.supertrend(short, short, short, 5, 3.0)
    assert np.isnan(line).all() and np.isnan(direction).all()
    stop, buy, sell = ind.ut_bot(short, short, short, short, atr_period=5)
    assert np.isnan(stop).all() and not buy.any() and not sell.any()
    empty = np.array([])
    assert ind.ema(empty, 3).shape == (0,)
    assert ind.true_range(empty, empty, empty).shape == (0,)
    assert ind.ut_bot(empty, empty, empty, empty)[0].shape == (0,)
    assert all(np.isnan(a).all() for a in ind.heikin_ashi(*[np.full(3, np.nan)] * 4))


def test_all_nan_input_is_all_nan_output() -> None:
    nans = np.full(50, np.nan)
    assert np.isnan(ind.ema(nans, 3)).all()
    assert np.isnan(ind.atr(nans, nans, nans, 3)).all()
    assert np.isnan(ind.supertrend(nans, nans, nans, 3, 2.0)[0]).all()


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "14", None])
def test_invalid_period_raises_a_clear_error(bad: object) -> None:
    with pytest.raises(ValueError, match="period must be an integer >= 1"):
        ind.ema([1.0, 2.0], bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="atr_period"):
        ind.ut_bot([1.0], [1.0], [1.0], [1.0], atr_period=bad)  # type: ignore[arg-type]


def test_other_argument_errors() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        ind.atr([1.0, 2.0], [1.0], [1.0, 2.0], 2)
    with pytest.raises(ValueError, match="fast .* must be less than slow"):
        ind.macd(np.arange(50.0), fast=26, slow=12)
    with pytest.raises(ValueError, match="one-dimensional"):
        ind.sma(np.ones((2, 2)), 2)
    with pytest.raises(ValueError, match="anchor"):
        ind.vwap([1.0], [1.0], [1.0], [1.0], anchor=[True, False])


def test_inputs_are_not_modified() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    ind.rsi(x, 2)
    ind.macd(np.arange(40.0), 2, 3, 2)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0, 4.0])
