"""Strategies: the plug-in seam (``base``) and the built-in strategies, registered by name on import."""

# Importing the built-ins registers them, so REGISTRY is complete as soon as anything under strategies is imported.
from marketpulse.strategies import bollinger_breakout, ema_cross, rsi_reversion, supertrend, ut_bot  # noqa: F401
from marketpulse.strategies.base import REGISTRY, Action, BarState, Param, Signals, Strategy, get_strategy, register

__all__ = ["REGISTRY", "Action", "BarState", "Param", "Signals", "Strategy", "get_strategy", "register"]
