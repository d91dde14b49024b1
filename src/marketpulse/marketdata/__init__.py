"""Market data: normalized models, sources (replay, Binance), the candle/snapshot store and open interest."""
