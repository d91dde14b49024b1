"""Paper trading survives its leader: three `pulse worker` processes elect one to run the deployments (the holder of
the `paper-trading` lease); SIGKILL it mid-replay and another takes over within the lease TTL, resumes every
deployment from its stored snapshot and the group's pending messages, and misses no market minute. At the end each
deployment's trades are exactly the trades `Backtest(...).run()` makes on the stored candles it traded on.

Processes as in test_multiprocess.py: PostgreSQL and Redis shared by one ingest, one API and the workers.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest
import redis.asyncio as redis

from e2e.support import Proc, Processes, eventually, free_port, sign_in
from e2e.test_multiprocess import DEPLOYMENT, REDIS_URL, REPLAY_START, pg_url, redis_client  # noqa: F401  (fixtures)
from marketpulse.backtest import Backtest
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.trading.paper.strategy_runner import read_history_snapshot

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(420)]

LEASE_TTL_S = 4
LEADING = "paper trading runner started"
MINUTE = 60_000
TAKER_FEE_BPS, MAKER_FEE_BPS = 4.0, 2.0  # the paper defaults, which the deployments' engines use
DEPLOYMENTS = [
    {"strategy": "ema_cross", "symbol": "BTCUSDT", "interval": "1m", "params": {"fast": 3, "slow": 8},
     "cash": 3000},
    {"strategy": "ut_bot", "symbol": "ETHUSDT", "interval": "1m",
     "params": {"key_value": 1.0, "atr_period": 10, "mode": "always_in"}, "cash": 3000},
]
MINUTES_BEFORE_KILL = 12
MINUTES_AFTER_TAKEOVER = 12


async def test_killing_the_paper_leader_hands_over_without_losing_a_minute(
    pg_url: tuple[str, str], redis_client: redis.Redis, processes: Processes  # noqa: F811
) -> None:
    sa_url, pg_dsn = pg_url
    processes.env.update(
        PULSE_DATABASE_URL=sa_url, PULSE_BUS_URL=REDIS_URL, PULSE_DATA_DIR=str(processes.cwd / "var"),
        PULSE_INGEST_API_KEY="e2e-key", PULSE_REPLAY_START=REPLAY_START.isoformat(),
        PULSE_LEASE_TTL_S=str(LEASE_TTL_S),  # claims stay at their 30 s default: the successor must not wait for them
        PULSE_PAPER_DAILY_LOSS_LIMIT_PCT="0",  # the breaker would refuse entries a backtest makes
        PULSE_DEPLOYMENT=DEPLOYMENT,  # this run's own streams, leases and channel; `redis_client` empties them
    )
    migrated = processes.run("db-upgrade", "db", "upgrade")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    workers = [processes.start(f"worker-{i}", "worker") for i in (1, 2, 3)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start("api", "api", "--port", str(port))
    db = await asyncpg.connect(pg_dsn)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            await eventually(lambda: all(w.log_has("worker consumers subscribed") for w in workers), deadline_s=90,
                             what="three workers subscribed", check=processes.check_alive)
            leaders = [w for w in workers if w.log_has(LEADING)]
            assert len(leaders) == 1, f"{len(leaders)} workers run paper trading"
            leader = leaders[0]
            await eventually(lambda: _ready(http), deadline_s=90, what="API ready", check=processes.check_alive)

            ingest = processes.start("ingest", "ingest", "--source", "replay")
            await eventually(lambda: _listed(http, {d["symbol"] for d in DEPLOYMENTS}), deadline_s=90,
                             what="the deployments' symbols in the market table", check=processes.check_alive)
            trader = ("trader@example.com", "Correct-Horse-9-battery")  # deployments are a signed-in user's
            made = processes.run("create-user", "admin", "create-user", "--email", trader[0], "--password",
                                 trader[1], "--plan", "pro")
            assert made.returncode == 0, made.stdout + made.stderr
            await sign_in(http, *trader)
            ids = []
            for body in DEPLOYMENTS:
                created = await http.post("/api/v1/paper/deployments", json=body)
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])

            # --- the leader trades a while, then dies without a word ---
            first_bars = await eventually(lambda: _last_bars(http, ids), deadline_s=90, what="deployments running",
                                          check=processes.check_alive)
            await _until_bars_past(http, ids, min(first_bars) + MINUTES_BEFORE_KILL * MINUTE, processes)
            killed_at = time.monotonic()
            killed_bar = min(await _last_bars(http, ids) or [0])
            leader.kill_hard()

            # --- another worker takes over within the TTL and carries on ---
            successor = await eventually(lambda: _new_leader(workers, leader), deadline_s=4 * LEASE_TTL_S + 30,
                                         what="a new paper-trading leader", check=processes.check_alive)
            took = time.monotonic() - killed_at
            print(f"{successor.name} took over {took:.1f}s after the leader was killed (TTL {LEASE_TTL_S}s)")
            assert took < LEASE_TTL_S + LEASE_TTL_S / 3 + 10, f"takeover took {took:.1f}s"  # TTL + one attempt + load
            await _until_bars_past(http, ids, killed_bar + MINUTES_AFTER_TAKEOVER * MINUTE, processes)

            # --- stop the market, let the paper leader and the recorder drain, then compare with backtests ---
            ingest.expected_dead = True
            ingest.stop()
            for deployment_id, spec in zip(ids, DEPLOYMENTS, strict=True):
                await _assert_same_trades_as_backtest(http, db, deployment_id, spec, processes)
            assert sum(w.log_has(LEADING) for w in workers if w.alive()) == 1
    finally:
        await db.close()


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/health/ready")).status_code == 200


async def _listed(http: httpx.AsyncClient, symbols: set[str]) -> bool:
    rows = (await http.get("/api/v1/market/data")).json()["data"]
    return symbols <= {row["symbol"] for row in rows}


async def _deployment(http: httpx.AsyncClient, deployment_id: str) -> dict[str, Any]:
    listed = (await http.get("/api/v1/paper/deployments")).json()
    rows = listed["data"] if isinstance(listed, dict) else listed
    return next(d for d in rows if d["id"] == deployment_id)


async def _last_bars(http: httpx.AsyncClient, ids: list[str]) -> list[int] | None:
    bars = [(await _deployment(http, i))["last_bar"] for i in ids]
    return None if any(b is None for b in bars) else bars


async def _until_bars_past(http: httpx.AsyncClient, ids: list[str], bar_ms: int, processes: Processes) -> None:
    async def past() -> bool:
        bars = await _last_bars(http, ids)
        return bars is not None and min(bars) >= bar_ms

    await eventually(past, deadline_s=180, what=f"every deployment past {bar_ms}", check=processes.check_alive)


def _new_leader(workers: list[Proc], old: Proc) -> Proc | None:
    return next((w for w in workers if w is not old and w.alive() and w.log_has(LEADING)), None)


async def _stored_minutes(db: asyncpg.Connection, symbol: str, start: int, end: int) -> CandleFrame:
    rows = await db.fetch(
        "SELECT open_time, open, high, low, close, volume FROM candles WHERE symbol = $1 AND interval = '1m' "
        "AND open_time >= $2 AND open_time <= $3 ORDER BY open_time", symbol, start, end, timeout=20,
    )
    cols = list(zip(*[tuple(r) for r in rows], strict=True)) if rows else [()] * 6
    return CandleFrame(np.asarray(cols[0], dtype=np.int64), *(np.asarray(c, dtype=float) for c in cols[1:]),
                       symbol, "1m")


async def _assert_same_trades_as_backtest(http: httpx.AsyncClient, db: asyncpg.Connection, deployment_id: str,
                                          spec: dict[str, Any], processes: Processes) -> None:
    symbol = spec["symbol"]

    async def drained() -> tuple[bytes, int] | None:
        """The deployment's stored history once it has stepped through every stored minute (nothing in flight)."""
        row = await db.fetchrow("SELECT history_snapshot, last_bar_ms FROM paper_deployments WHERE id = $1",
                                deployment_id, timeout=20)
        newest = await db.fetchval("SELECT max(open_time) FROM candles WHERE symbol = $1 AND interval = '1m'",
                                   symbol, timeout=20)
        if row is None or row["history_snapshot"] is None or newest is None or row["last_bar_ms"] != newest:
            return None
        first = int(read_history_snapshot(bytes(row["history_snapshot"])).bars["time"][0])
        stored = await db.fetchval("SELECT count(*) FROM candles WHERE symbol = $1 AND interval = '1m' AND "
                                   "open_time BETWEEN $2 AND $3", symbol, first, newest, timeout=20)
        if stored != (newest - first) // MINUTE + 1:
            return None  # the recorder has yet to claim what the dead worker held
        return bytes(row["history_snapshot"]), int(newest)

    history, last = await eventually(drained, deadline_s=90, what=f"{symbol} deployment caught up with the store",
                                     check=processes.check_alive)
    times = [int(t) for t in read_history_snapshot(history).bars["time"]]
    first = times[0]
    # Not one minute skipped or stepped twice, across the leader's death.
    assert times == list(range(first, last + MINUTE, MINUTE)), f"{symbol}: the deployment's minutes have holes"
    minutes = await _stored_minutes(db, symbol, first, last)
    assert [int(t) for t in minutes.time] == times

    expected = Backtest(minutes, spec["strategy"], spec["params"], cash=spec["cash"], fee_bps=TAKER_FEE_BPS,
                        maker_fee_bps=MAKER_FEE_BPS).run().trades
    got = (await _deployment(http, deployment_id))["trades"]
    assert expected, f"{symbol}: a backtest without trades proves nothing"
    assert got == [t.as_json() for t in expected], f"{symbol}: paper trades differ from the backtest's"
