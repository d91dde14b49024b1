"""Binance USD-M futures source: pure wire decoding (`frames`), REST and WebSocket adapters, `BinanceSource`."""

from marketpulse.marketdata.binance.source import FRAMES_REJECTED, BinanceSource

__all__ = ["FRAMES_REJECTED", "BinanceSource"]
