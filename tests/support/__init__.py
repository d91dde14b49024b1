"""Helpers every test folder shares: waiting for a condition, seeded candle walks."""
