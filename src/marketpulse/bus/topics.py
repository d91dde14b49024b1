"""Every topic on the bus, in one place. Payloads are JSON-able dicts (documented beside each name)."""

# list of normalized 24h tickers merged with mark price/funding: {"time": ms, "rows": [MarketRow as dict, …]}
MARKET_TICKERS = "market.tickers"
# closed candles: {"interval": "1m", "candles": [Candle as dict, …]}
MARKET_CANDLES = "market.candles"
# open interest in USD: {"asOf": ms, "data": {"BTCUSDT": usd, …}}
MARKET_OPEN_INTEREST = "market.open_interest"
# a stored VolumeAlert, camelCase wire form
ALERTS_VOLUME = "alerts.volume"
# paper trading fills and risk halts: {"account_id", "order_id", ...}
PAPER_FILLS = "paper.fills"
RISK_HALTS = "risk.halts"
