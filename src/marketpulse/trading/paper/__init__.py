"""Paper trading: a simulated account per owner, filled against the live or replayed candle stream.

Pure core (no I/O): `orders` (kinds, time in force), `matching` (the backtest engine's fill rules), `account`
(balance, positions, P&L), `strategy_runner` (a strategy on the backtester's `Engine`, bar by bar).
Adapters: `tables` + `store` (SQLAlchemy), `service` (orders, fills, marks, halts; publishes `paper.fills` and
`risk.halts`), `deployments` (strategies deployed to paper), `runner` (the bus consumer), `views` (HTTP).
The pre-trade checks live in `marketpulse.trading.risk`.
"""
