"""Strategies: the plug-in seam (``base``) and the built-in strategies, registered by name on import."""

from marketpulse.strategies.base import REGISTRY, Action, BarState, Param, Signals, Strategy, get_strategy, register

__all__ = ["REGISTRY", "Action", "BarState", "Param", "Signals", "Strategy", "get_strategy", "register"]
