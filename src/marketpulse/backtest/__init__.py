"""Backtesting: the engine (``core`` step function, ``engine`` API), statistics, parameter search and reports.

The engine's names load lazily: the jobs table (`backtest.tables`) lives in this package, and importing the schema
(`marketpulse.storage.models`, Alembic, every test) must not compile numba kernels or import every strategy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    "Backtest": "engine", "BacktestResult": "engine", "Engine": "engine", "EngineSettings": "engine",
    "LookAheadError": "engine", "Trade": "engine", "check_no_lookahead": "engine", "METRICS": "stats",
    "Stats": "stats",
}

__all__ = [
    "METRICS", "Backtest", "BacktestResult", "Engine", "EngineSettings", "LookAheadError", "Stats", "Trade",
    "check_no_lookahead",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
