"""A dispatcher SIGKILLed in the middle of a batch of 1,000 notifications: another `pulse worker` takes its
claimed rows over once their lease expires, and the receiver gets every notification, each idempotency key once
(counted at the receiver), none lost, and each destination's in the order they were enqueued. On SQLite (one file
shared by the processes) and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from e2e.support import Processes, eventually
from fakes.providers import FakeProviders
from marketpulse.clock import SystemClock
from marketpulse.credits.service import CreditLedger
from marketpulse.delivery.outbox import enqueue, idempotency_key
from marketpulse.delivery.tables import DestinationRow, NotificationRow
from marketpulse.storage.database import create_engine, session_factory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

USERS, PER_USER = 10, 100
LEASE_S = 3


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    else:
        yield request.getfixturevalue("empty_pg_database")  # migrated by the test, through `pulse db upgrade`


async def _fill(url: str, receiver: FakeProviders) -> list[list[str]]:
    """USERS webhook destinations with PER_USER notifications each; the keys per destination, in enqueue order."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    keys: list[list[str]] = []
    ledger = CreditLedger(sessions, SystemClock())
    async with sessions.begin() as s:
        for u in range(USERS):
            s.add(DestinationRow(id=f"dest-{u}", owner_id=f"user-{u}", channel="webhook", state="verified",
                                 address=receiver.url(f"/hook/{u}"), code_attempts=0, created_at_ms=1))
            # A worker charges each delivery its channel's credits: enough for every one (a webhook costs 1).
            await ledger.grant(s, owner_id=f"user-{u}", amount=10 * PER_USER, idempotency_key=f"grant-{u}",
                               reason="test")
    for i in range(PER_USER):
        async with sessions.begin() as s:
            for u in range(USERS):
                await enqueue(s, owner_id=f"user-{u}", rule_id=f"rule-{u}", event_key=f"e{i}",
                              destination_ids=[f"dest-{u}"], message={"title": f"{u}:{i}", "text": "x"})
    for u in range(USERS):
        keys.append([idempotency_key(f"rule-{u}", f"e{i}", f"dest-{u}") for i in range(PER_USER)])
    await engine.dispose()
    return keys


async def _sent(url: str) -> int:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            return int((await s.execute(select(func.count()).select_from(NotificationRow)
                                        .where(NotificationRow.status == "sent"))).scalar_one())
    finally:
        await engine.dispose()


async def test_a_killed_dispatcher_loses_and_repeats_nothing(database: str, processes: Processes) -> None:
    processes.env.update(PULSE_DATABASE_URL=database, PULSE_BUS_URL="memory://",
                         PULSE_DATA_DIR=str(processes.cwd / "var"), PULSE_WEBHOOK_ALLOW_PRIVATE="true",
                         PULSE_DELIVERY_LEASE_S=str(LEASE_S), PULSE_DELIVERY_BATCH_SIZE="100")
    migrated = processes.run("db-upgrade", "db", "upgrade")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    async with FakeProviders.start() as receiver:
        receiver.webhook_delay_s = 0.05  # slow enough that the kill lands mid-batch
        expected = await _fill(database, receiver)
        first = processes.start("worker-1", "worker")
        await eventually(lambda: _at_least(receiver, 150), deadline_s=120, what="deliveries under way",
                         check=processes.check_alive)
        first.kill_hard()
        before_kill = len(receiver.of("webhook"))
        assert before_kill < USERS * PER_USER, "the batch finished before the kill"
        processes.start("worker-2", "worker")
        await eventually(lambda: _all_keys(receiver, USERS * PER_USER), deadline_s=120,
                         what="every notification delivered", check=processes.check_alive)
        await eventually(lambda: _db_done(database), deadline_s=60, what="every row marked sent",
                         check=processes.check_alive)
        got = receiver.keys()
    counts = Counter(got)
    assert set(counts) == {k for per in expected for k in per}  # none lost, none invented
    repeats = sum(n - 1 for n in counts.values())
    print(f"delivered {len(counts)} notifications; {repeats} repeated deliveries of in-flight rows (same key)")
    assert repeats <= 100  # at most the killed dispatcher's batch, which its receiver recognises by key
    firsts = list(dict.fromkeys(got))  # the order of first arrival
    for per in expected:
        wanted = set(per)
        assert [k for k in firsts if k in wanted] == per  # each destination's in enqueue order


async def _at_least(receiver: FakeProviders, n: int) -> bool:
    return len(receiver.of("webhook")) >= n


async def _all_keys(receiver: FakeProviders, n: int) -> bool:
    return len(set(receiver.keys())) >= n


async def _db_done(url: str) -> bool:
    return await _sent(url) == USERS * PER_USER


