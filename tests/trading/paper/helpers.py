"""Builders shared by the paper-trading tests."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from marketpulse.bus import EventBus, Message
from marketpulse.marketdata.models import Candle
from marketpulse.marketdata.store import save_candles
from marketpulse.runtime import Runtime
from marketpulse.trading.paper.service import PaperConfig
from marketpulse.trading.risk import Plan

T0 = 1_760_126_400_000  # 2025-10-10 20:00 UTC, the conftest clock's start
MINUTE = 60_000


def candle(symbol: str, open_time: int, o: float, h: float | None = None, low: float | None = None,
           c: float | None = None) -> Candle:
    c = o if c is None else c
    return Candle(symbol, "1m", open_time, o, max(o, c) if h is None else h, min(o, c) if low is None else low, c,
                  1.0, o)


async def listed(runtime: Runtime, *symbols: str, price: float = 100.0) -> None:
    """Store one old candle per symbol: paper trading refuses symbols with no market data, and this gives them
    some (the newest stored close is a symbol's mark until a live price is seen)."""
    await save_candles(runtime.sessions, "test", [candle(sym, T0 - 1_440 * MINUTE, price) for sym in symbols])


def config(**overrides: Any) -> PaperConfig:
    base: dict[str, Any] = dict(
        plan=Plan.PRO, starting_balance=10_000.0, taker_fee_bps=4.0, maker_fee_bps=2.0, slippage_bps=0.0,
        max_position_notional=1_000_000.0, daily_loss_limit_pct=0.05,
    )
    base.update(overrides)
    return PaperConfig(**base)


class Collector:
    """Everything published on one topic, for asserting on bus events."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @classmethod
    async def on(cls, bus: EventBus, topic: str) -> Collector:
        self = cls()
        await bus.subscribe(topic, f"test-{topic}", self._handle)
        return self

    async def _handle(self, msg: Message) -> None:
        await self.items.put(msgspec.to_builtins(msg.data))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.items.get(), timeout=5)
