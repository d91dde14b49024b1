"""Technical indicators over numpy arrays: pure functions, input-length outputs, NaN during warm-up.

Conventions match TA-Lib (SMA, EMA, RMA, ATR, RSI, MACD, BBANDS, TRANGE) and TradingView (``tv_atr``,
``supertrend``, ``ut_bot``, ``heikin_ashi``, ``vwap``). Periods must be integers >= 1 (ValueError otherwise);
inputs too short for the warm-up give all-NaN outputs, never exceptions.
"""

from marketpulse.indicators.cross import crossover, crossunder
from marketpulse.indicators.momentum import macd, rsi
from marketpulse.indicators.moving_averages import ema, rma, sma
from marketpulse.indicators.price import heikin_ashi, session_starts, vwap
from marketpulse.indicators.trend import supertrend, ut_bot
from marketpulse.indicators.volatility import atr, bollinger, rolling_std, true_range, tv_atr

__all__ = [
    "atr",
    "bollinger",
    "crossover",
    "crossunder",
    "ema",
    "heikin_ashi",
    "macd",
    "rma",
    "rolling_std",
    "rsi",
    "session_starts",
    "sma",
    "supertrend",
    "true_range",
    "tv_atr",
    "ut_bot",
    "vwap",
]
