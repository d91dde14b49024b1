"""What a market-data source is. `replay` and `binance` implement it; `pulse ingest --source NAME` picks one.

A source publishes to the bus until cancelled:
- `topics.MARKET_TICKERS`  `TickersEvent(time, rows)`   (the table, changed rows)
- `topics.MARKET_CANDLES`  `CandlesEvent(candles, interval="1m")`  (closed candles only)
- `topics.MARKET_OPEN_INTEREST` `OpenInterestEvent(as_of, data={"BTCUSDT": usd, …})`
Its `clock` is the market's clock: wall time for Binance, accelerated time for the replay. The detector's
scheduler runs on that clock, so a replay at 60× scans every 5 market minutes = every 5 real seconds.
"""

from __future__ import annotations

from typing import Protocol

from marketpulse.bus import EventBus
from marketpulse.clock import Clock


class MarketSource(Protocol):
    name: str
    clock: Clock

    async def run(self, bus: EventBus) -> None: ...
