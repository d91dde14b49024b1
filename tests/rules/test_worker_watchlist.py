"""Rules on a watchlist follow its edits through the bus (`watchlists.changed`): a symbol added is watched from then
on, a symbol removed no longer fires, and a rule's trigger state on the symbols it keeps survives the reload."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from marketpulse.accounts.plans import plan_named
from marketpulse.bus import topics
from marketpulse.marketdata.models import MarketRow
from marketpulse.rules.model import RuleIn
from marketpulse.rules.tables import AlertHistoryRow
from marketpulse.rules.worker import RuleWorker
from marketpulse.runtime import Runtime
from support.waiting import drained

from .conftest import rule

pytestmark = pytest.mark.asyncio
T0 = 1_760_126_400_000
MIN = 60_000


async def ticks(runtime: Runtime, t: int, **prices: float) -> None:
    rows = [MarketRow(symbol, t, price, 0.0, 1e9) for symbol, price in prices.items()]
    await runtime.bus.publish(topics.MARKET_TICKERS, topics.TickersEvent(t, rows))
    await drained(runtime.bus)


async def fired(runtime: Runtime) -> list[tuple[str, int]]:
    async with runtime.sessions() as s:
        rows = await s.scalars(select(AlertHistoryRow).order_by(AlertHistoryRow.time_ms, AlertHistoryRow.symbol))
        return [(r.symbol, r.time_ms) for r in rows]


async def test_a_watchlist_rule_follows_symbols_added_and_removed(runtime: Runtime) -> None:
    owner = (await runtime.services.accounts.create_user("ana@example.com", None, plan="pro", verified=True)).id
    pro = plan_named("pro")
    lists = runtime.services.watchlists
    majors = await lists.create(owner, pro, "Majors", ["BTCUSDT"])
    body = rule(watchlist=majors.id, frequency="every_time", cooldown_s=0, hysteresis_pct=1.0)
    await runtime.services.rules.create(owner, "pro", RuleIn.model_validate(body))
    worker = RuleWorker(runtime.services.rules, runtime.bus)
    await worker.start()
    await ticks(runtime, T0, BTCUSDT=99_500.0, ETHUSDT=99_500.0)
    await ticks(runtime, T0 + MIN, BTCUSDT=100_500.0, ETHUSDT=100_500.0)
    assert await fired(runtime) == [("BTCUSDT", T0 + MIN)]  # ETH is not on the list yet

    await lists.add(owner, pro, majors.id, ["ETHUSDT"], "symbols")
    await drained(runtime.bus)
    await ticks(runtime, T0 + 2 * MIN, BTCUSDT=99_500.0, ETHUSDT=99_500.0)  # BTC back inside its band: disarmed
    await ticks(runtime, T0 + 3 * MIN, BTCUSDT=100_600.0, ETHUSDT=100_600.0)
    assert await fired(runtime) == [("BTCUSDT", T0 + MIN), ("ETHUSDT", T0 + 3 * MIN)]  # BTC's state kept

    await lists.remove(owner, majors.id, ["BTCUSDT"])
    await drained(runtime.bus)
    await ticks(runtime, T0 + 4 * MIN, BTCUSDT=98_000.0, ETHUSDT=98_000.0)
    await ticks(runtime, T0 + 5 * MIN, BTCUSDT=100_700.0, ETHUSDT=100_700.0)
    assert await fired(runtime) == [("BTCUSDT", T0 + MIN), ("ETHUSDT", T0 + 3 * MIN), ("ETHUSDT", T0 + 5 * MIN)]

    await lists.delete(owner, majors.id)
    await drained(runtime.bus)
    await ticks(runtime, T0 + 6 * MIN, ETHUSDT=98_000.0)
    await ticks(runtime, T0 + 7 * MIN, ETHUSDT=100_800.0)
    assert len(await fired(runtime)) == 3  # the list is gone: the rule watches nothing
    await worker.stop()
