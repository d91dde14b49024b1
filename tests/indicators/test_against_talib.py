"""Our indicators against TA-Lib, on a seeded random walk and (when ../shared is present) real BTCUSDT minutes."""

from __future__ import annotations

import numpy as np
import pytest
import talib

import marketpulse.indicators as ind
from marketpulse.marketdata.frame import CandleFrame


def assert_same(ours: np.ndarray, theirs: np.ndarray, scale: float = 1.0) -> None:
    """Same warm-up (NaN positions) and the same values after it, to ~1e-9 of the data's scale."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg="warm-up (NaN positions) differs")
    valid = ~np.isnan(theirs)
    assert valid.sum() > 0, "nothing compared"
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.parametrize("period", [2, 5, 20, 200])
def test_sma(candles: CandleFrame, period: int) -> None:
    assert_same(ind.sma(candles.close, period), talib.SMA(candles.close, period), candles.close.mean())


@pytest.mark.parametrize("period", [2, 12, 26, 200])
def test_ema_seeded_with_sma(candles: CandleFrame, period: int) -> None:
    assert_same(ind.ema(candles.close, period), talib.EMA(candles.close, period), candles.close.mean())


def test_true_range(candles: CandleFrame) -> None:
    c = candles
    assert_same(ind.true_range(c.high, c.low, c.close), talib.TRANGE(c.high, c.low, c.close), c.close.mean())


@pytest.mark.parametrize("period", [1, 2, 14, 100])
def test_atr_wilder(candles: CandleFrame, period: int) -> None:
    c = candles
    ours = ind.atr(c.high, c.low, c.close, period)
    assert_same(ours, talib.ATR(c.high, c.low, c.close, period), c.close.mean())
    assert np.isnan(ours[period - 1]) and not np.isnan(ours[period])  # TA-Lib's first ATR is at index `period`


@pytest.mark.parametrize("period", [2, 6, 14, 50])
def test_rsi(candles: CandleFrame, period: int) -> None:
    assert_same(ind.rsi(candles.close, period), talib.RSI(candles.close, period), 100.0)


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (2, 3, 2)])
def test_macd(candles: CandleFrame, fast: int, slow: int, signal: int) -> None:
    ours = ind.macd(candles.close, fast, slow, signal)
    theirs = talib.MACD(candles.close, fast, slow, signal)
    for mine, ref in zip(ours, theirs, strict=True):
        assert_same(mine, ref, candles.close.mean())


@pytest.mark.parametrize(("period", "k"), [(20, 2.0), (5, 1.5), (100, 3.0)])
def test_bollinger_population_std(candles: CandleFrame, period: int, k: float) -> None:
    ours = ind.bollinger(candles.close, period, k)
    theirs = talib.BBANDS(candles.close, period, k, k)
    for mine, ref in zip(ours, theirs, strict=True):
        # TA-Lib's variance is E[x^2] - E[x]^2 (~1e-8 absolute at BTC prices), ours two-pass: hence the scaled atol.
        assert_same(mine, ref, candles.close.mean())


def test_tradingview_atr_converges_to_talib(candles: CandleFrame) -> None:
    c = candles
    tv = ind.tv_atr(c.high, c.low, c.close, 14)
    ta = talib.ATR(c.high, c.low, c.close, 14)
    assert np.isnan(tv[12]) and not np.isnan(tv[13]) and np.isnan(ta[13])  # TradingView starts one bar earlier
    assert tv[14] != ta[14]  # different seeds...
    np.testing.assert_allclose(tv[2000:], ta[2000:], rtol=1e-9)  # ...forgotten after enough bars of (13/14)^n
