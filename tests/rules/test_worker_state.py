"""A restarted worker resumes each rule's trigger state from the store: a rule disarmed by its hysteresis band stays
disarmed (a price wobbling back over the line inside the band does not fire again), a cooldown runs on from the
stored last fire, and re-arming still works after the restart. Both engine paths: a single-symbol rule (the
vectorized state) and a two-symbol rule (the per-(rule, symbol) state). Without the stored state each test fires
once more than it asserts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketpulse.bus import topics
from marketpulse.marketdata.models import MarketRow
from marketpulse.rules.model import RuleIn
from marketpulse.rules.tables import AlertHistoryRow, AlertRuleStateRow
from marketpulse.rules.worker import RuleWorker
from marketpulse.runtime import Runtime
from support.waiting import drained

from .conftest import rule

pytestmark = pytest.mark.asyncio
T0 = 1_760_126_400_000
MIN = 60_000
TARGETS = [pytest.param(["BTCUSDT"], id="single-symbol"), pytest.param(["BTCUSDT", "ETHUSDT"], id="two-symbols")]


async def fired(runtime: Runtime) -> int:
    async with runtime.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(AlertHistoryRow)) or 0)


async def ticks(runtime: Runtime, *prices: tuple[int, float]) -> None:
    for t, price in prices:
        await runtime.bus.publish(topics.MARKET_TICKERS,
                                  topics.TickersEvent(t, [MarketRow("BTCUSDT", t, price, 0.0, 1e9)]))
    await drained(runtime.bus)


async def restarted(runtime: Runtime, worker: RuleWorker) -> RuleWorker:
    await worker.stop()
    fresh = RuleWorker(runtime.services.rules, runtime.bus)
    await fresh.start()
    return fresh


async def _rule(runtime: Runtime, symbols: list[str], **overrides: object) -> str:
    owner = (await runtime.services.accounts.create_user("ana@example.com", None, plan="pro", verified=True)).id
    body = rule(symbols=symbols, frequency="every_time", **overrides)
    return (await runtime.services.rules.create(owner, "pro", RuleIn.model_validate(body))).id


@pytest.mark.parametrize("symbols", TARGETS)
async def test_a_disarmed_rule_stays_disarmed_across_a_restart(runtime: Runtime, symbols: list[str]) -> None:
    rule_id = await _rule(runtime, symbols, cooldown_s=0, hysteresis_pct=1.0)  # re-arms below 99,000
    worker = RuleWorker(runtime.services.rules, runtime.bus)
    await worker.start()
    await ticks(runtime, (T0, 99_500.0), (T0 + MIN, 100_500.0))
    assert await fired(runtime) == 1
    async with runtime.sessions() as s:
        state = await s.get(AlertRuleStateRow, (rule_id, "BTCUSDT"))
    assert state is not None and (state.armed, state.last_fired_ms) == (False, T0 + MIN)

    worker = await restarted(runtime, worker)
    # Back under the line but inside the band, then over it again: still disarmed, nothing fires.
    await ticks(runtime, (T0 + 2 * MIN, 100_500.0), (T0 + 3 * MIN, 99_500.0), (T0 + 4 * MIN, 100_600.0))
    assert await fired(runtime) == 1
    # Out of the band (re-armed), then over the line: fires.
    await ticks(runtime, (T0 + 5 * MIN, 98_500.0), (T0 + 6 * MIN, 100_700.0))
    assert await fired(runtime) == 2
    await worker.stop()


@pytest.mark.parametrize("symbols", TARGETS)
async def test_a_cooldown_runs_on_across_a_restart(runtime: Runtime, symbols: list[str]) -> None:
    await _rule(runtime, symbols, cooldown_s=600, hysteresis_pct=0.0)
    worker = RuleWorker(runtime.services.rules, runtime.bus)
    await worker.start()
    await ticks(runtime, (T0, 99_000.0), (T0 + MIN, 100_500.0))
    assert await fired(runtime) == 1

    worker = await restarted(runtime, worker)
    # Re-armed and crossing again 3 minutes after the fire: inside the 10-minute cooldown.
    await ticks(runtime, (T0 + 2 * MIN, 100_500.0), (T0 + 3 * MIN, 99_000.0), (T0 + 4 * MIN, 100_500.0))
    assert await fired(runtime) == 1
    # After the cooldown: fires.
    await ticks(runtime, (T0 + 12 * MIN, 99_000.0), (T0 + 13 * MIN, 100_500.0))
    assert await fired(runtime) == 2
    await worker.stop()


async def test_a_changed_rule_starts_from_a_fresh_state(runtime: Runtime) -> None:
    rule_id = await _rule(runtime, ["BTCUSDT"], cooldown_s=3600)
    worker = RuleWorker(runtime.services.rules, runtime.bus)
    await worker.start()
    await ticks(runtime, (T0, 99_000.0), (T0 + MIN, 100_500.0))
    assert await fired(runtime) == 1
    await worker.stop()
    row = await runtime.services.rules.rule(rule_id)
    assert row is not None
    body = RuleIn.model_validate({**row.spec, "cooldown_s": 0})
    await runtime.services.rules.replace(row.owner_id, "pro", rule_id, body)  # version 2: its own state
    worker = RuleWorker(runtime.services.rules, runtime.bus)
    await worker.start()
    await ticks(runtime, (T0 + 2 * MIN, 99_000.0), (T0 + 3 * MIN, 100_500.0))
    assert await fired(runtime) == 2
    await worker.stop()
