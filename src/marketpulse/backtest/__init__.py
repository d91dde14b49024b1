"""Backtesting: the engine (``core`` step function, ``engine`` API), statistics, parameter search and reports."""

from marketpulse.backtest.engine import (
    Backtest,
    BacktestResult,
    Engine,
    EngineSettings,
    LookAheadError,
    Trade,
    check_no_lookahead,
)
from marketpulse.backtest.stats import METRICS, Stats

__all__ = [
    "METRICS", "Backtest", "BacktestResult", "Engine", "EngineSettings", "LookAheadError", "Stats", "Trade",
    "check_no_lookahead",
]
