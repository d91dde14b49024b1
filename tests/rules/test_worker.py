"""The worker end to end on the bus: a ticker batch crossing a rule's line stores one history row and one outbox
row per verified destination in one go; the same message delivered again, or seen by a second worker, stores
nothing more; `once` disables the rule in the store; rule changes reach a running worker through the bus."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketpulse.bus import topics
from marketpulse.delivery.tables import NotificationRow
from marketpulse.marketdata.models import MarketRow
from marketpulse.rules.model import RuleIn
from marketpulse.rules.tables import AlertHistoryRow, AlertRuleRow
from marketpulse.rules.worker import RuleWorker
from marketpulse.runtime import Runtime
from support.waiting import drained, eventually

from .conftest import destination, rule

pytestmark = pytest.mark.asyncio
T0 = 1_760_126_400_000


def tick(time: int, **prices: float) -> topics.TickersEvent:
    return topics.TickersEvent(time, [MarketRow(s, time, p, 0.0, 1e9) for s, p in prices.items()])


async def count(runtime: Runtime, table: type) -> int:
    async with runtime.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


def saw_price(worker: RuleWorker, price: float) -> bool:
    prices = worker.engine.values.get("price")
    return prices is not None and prices[0] == price


async def _owner(runtime: Runtime) -> str:
    return (await runtime.services.accounts.create_user("ana@example.com", None, plan="pro", verified=True)).id


async def test_a_crossing_is_stored_once_with_its_outbox_rows(runtime: Runtime) -> None:
    owner = await _owner(runtime)
    email = await destination(runtime, owner)
    pending = await destination(runtime, owner, state="pending")  # not verified: left out by the outbox
    service = runtime.services.rules
    created = await service.create(owner, "pro", RuleIn.model_validate(rule(channels=[email, pending])))
    workers = [RuleWorker(service, runtime.bus), RuleWorker(service, runtime.bus)]  # two workers, same rules
    for w in workers:
        await w.start()
    await runtime.bus.publish(topics.MARKET_TICKERS, tick(T0, BTCUSDT=99_000.0))
    crossing = tick(T0 + 1000, BTCUSDT=100_500.0)
    await runtime.bus.publish(topics.MARKET_TICKERS, crossing)
    await runtime.bus.publish(topics.MARKET_TICKERS, crossing)  # redelivered
    await eventually(lambda: all(saw_price(w, 100_500.0) for w in workers))
    await eventually(lambda: count(runtime, AlertHistoryRow))
    for w in workers:
        await w.stop()
    async with runtime.sessions() as s:
        history = list(await s.scalars(select(AlertHistoryRow)))
        outbox = list(await s.scalars(select(NotificationRow)))
        stored_rule = await s.get(AlertRuleRow, created.id)
    assert [(h.rule_id, h.symbol, h.event_key, h.time_ms, h.value) for h in history] == [
        (created.id, "BTCUSDT", f"BTCUSDT@bar:{T0}", T0 + 1000, 100_500.0)]
    assert [(n.destination_id, n.rule_id, n.event_key, n.status) for n in outbox] == [
        (email, created.id, f"BTCUSDT@bar:{T0}", "queued")]
    assert "BTC above 100k" in outbox[0].message["title"] and "100500" in history[0].message
    assert stored_rule is not None and (stored_rule.fired_count, stored_rule.last_fired_at_ms) == (1, T0 + 1000)


async def test_once_disables_the_rule_and_changes_reach_a_running_worker(runtime: Runtime) -> None:
    owner = await _owner(runtime)
    service = runtime.services.rules
    worker = RuleWorker(service, runtime.bus)
    await worker.start()  # no rules yet: they arrive through rules.changed
    once = await service.create(owner, "pro", RuleIn.model_validate(rule(frequency="once")))
    paused = await service.create(owner, "pro", RuleIn.model_validate(rule(name="paused")))
    await service.set_enabled(owner, "pro", paused.id, False)
    # Every change handled before the market moves: a count of 1 is also seen between loading `once` and loading
    # `paused`, and a tick then could fire the paused rule before its pause arrives.
    await drained(runtime.bus)
    assert len(worker.engine) == 1, "the once rule loaded, the paused one dropped"
    for i, price in enumerate((99_000.0, 101_000.0, 99_000.0, 101_000.0)):
        await runtime.bus.publish(topics.MARKET_TICKERS, tick(T0 + i * 120_000, BTCUSDT=price))
    await eventually(lambda: saw_price(worker, 101_000.0) and len(worker.engine) == 0)
    await eventually(lambda: count(runtime, AlertHistoryRow))
    await worker.stop()
    async with runtime.sessions() as s:
        row = await s.get(AlertRuleRow, once.id)
        assert row is not None and row.enabled is False and row.fired_count == 1
        assert await s.scalar(select(func.count()).select_from(AlertHistoryRow)) == 1


async def test_a_restarted_worker_rebuilds_from_the_store(runtime: Runtime) -> None:
    owner = await _owner(runtime)
    service = runtime.services.rules
    await service.create(owner, "pro", RuleIn.model_validate(rule(symbols=["BTCUSDT", "ETHUSDT"])))
    await service.create(owner, "pro", RuleIn.model_validate(rule(symbols="*", name="all")))
    worker = RuleWorker(service, runtime.bus)
    await worker.start()
    assert len(worker.engine) == 2
    await runtime.bus.publish(topics.MARKET_TICKERS, tick(T0, BTCUSDT=1.0, ETHUSDT=1.0, SOLUSDT=1.0))
    await runtime.bus.publish(topics.MARKET_TICKERS, tick(T0 + 1000, BTCUSDT=2e5, ETHUSDT=2e5, SOLUSDT=2e5))
    await eventually(lambda: worker.stored == 5, what="2 symbols of the first rule, 3 of the second")
    await worker.stop()
