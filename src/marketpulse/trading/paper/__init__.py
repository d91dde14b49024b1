"""Paper trading: a simulated account per owner, filled against the live or replayed candle stream."""
