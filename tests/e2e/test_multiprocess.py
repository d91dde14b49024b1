"""The scale-out story end to end, as separate OS processes sharing PostgreSQL and Redis Streams.

One `pulse ingest --source replay`, two `pulse worker`, two `pulse api`, all on a fresh PostgreSQL database and a
Redis database of this test's own. It proves what the README promises for several processes:
- both APIs are ready and serve the live table (each keeps its own copy from its own consumer group);
- volume alerts are detected by the workers and stored once, with the volumes of *every* candle of their hours
  although the workers share the candle stream;
- a Socket.IO client on API #2 receives `market` and `volume-alert` events (emitted by whichever API consumed
  them, fanned out through Redis);
- SIGKILL on one worker doesn't stop alerts, and the survivor claims the dead worker's pending messages;
- both workers scan every boundary, yet each alert is published by the one worker whose insert stored it (their
  logs account for every stored alert exactly once) and reaches the browser once.
The processes run as a deployment of this test run's own (PULSE_DEPLOYMENT): their streams (`pulse:{deployment}:…`),
leases and Socket.IO channel are theirs, so another checkout running its tests on the same Redis server can't push
its events into them, and cleanup deletes only these keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
import socketio
from sqlalchemy.engine import make_url

from e2e.support import Proc, Processes, eventually, free_port
from marketpulse.bus import key_prefix
from support.redis_ns import E2E_REDIS_URL, new_deployment, unlink_namespace

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(240)]

PG_ADMIN_DSN = os.environ.get("PULSE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = E2E_REDIS_URL
DEPLOYMENT = new_deployment("e2e")  # this run's: its keys are emptied before and after each test (`redis_client`)
STREAM_PREFIX = key_prefix(DEPLOYMENT)
CANDLES = STREAM_PREFIX + "market.candles"
TICKERS = STREAM_PREFIX + "market.tickers"
# Groups all workers share (each message handled by one of them); the spike scanner has one group per worker.
SHARED_WORKER_GROUPS = ("market-recorder", "paper-trading")
SCANNER_GROUP_PREFIX = "detection.volume-spikes-"
# Pinned (it is also the default for the bundled sample): 20 minutes before the 2025-10-10 21:00 cascade hour.
REPLAY_START = datetime(2025, 10, 10, 20, 40, tzinfo=UTC)
QUERY_TIMEOUT_S = 20  # a query that hangs fails with a message instead of silently eating the test timeout


@pytest.fixture
async def pg_url() -> AsyncIterator[tuple[str, str]]:
    """A fresh, empty PostgreSQL database (migrated by the test through `pulse db upgrade`), dropped afterwards."""
    name = f"mp_e2e_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(PG_ADMIN_DSN).set(database=name)  # the server, user and password PULSE_TEST_PG_DSN names
    try:
        yield (url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
               url.set(drivername="postgresql").render_as_string(hide_password=False))
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.Redis]:
    """The e2e Redis server; this run's deployment starts empty and is deleted afterwards (its keys only: the
    server is shared with other checkouts' tests, so never FLUSHDB)."""
    client = redis.from_url(REDIS_URL)
    await unlink_namespace(REDIS_URL, DEPLOYMENT)
    try:
        yield client
    finally:
        await unlink_namespace(REDIS_URL, DEPLOYMENT)
        await client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _pending_by_consumer(client: redis.Redis, stream: str, group: str) -> dict[str, int]:
    try:
        summary: dict[str, Any] = await client.xpending(stream, group)
    except redis.ResponseError:
        return {}
    return {_text(c["name"]): int(c["pending"]) for c in summary.get("consumers") or []}


def _worker_consumer(consumer_name: str, worker: Proc) -> bool:
    # Consumer names are host-pid-random (marketpulse.bus.redis_streams.default_consumer_name).
    return f"-{worker.popen.pid}-" in consumer_name


async def _get_json(http: httpx.AsyncClient, url: str) -> Any:
    response = await http.get(url)
    response.raise_for_status()
    return response.json()


ELITE_EMAIL, ELITE_PASSWORD = "elite@example.com", "Elite-Trader-2025!"


async def test_ingest_two_workers_two_apis(
    pg_url: tuple[str, str], redis_client: redis.Redis, processes: Processes
) -> None:
    # `processes` last: fixtures tear down in reverse, so the processes stop before their database is dropped.
    sa_url, pg_dsn = pg_url
    processes.env.update(
        PULSE_DATABASE_URL=sa_url,
        PULSE_BUS_URL=REDIS_URL,
        PULSE_DATA_DIR=str(processes.cwd / "var"),
        PULSE_INGEST_API_KEY="e2e-key",
        PULSE_MARKET_DEBOUNCE_MS="200",
        PULSE_REPLAY_START=REPLAY_START.isoformat(),
        PULSE_BUS_CLAIM_IDLE_MS="5000",  # a dead worker's messages are claimed within seconds, not half a minute
        PULSE_DEPLOYMENT=DEPLOYMENT,  # streams, leases and Socket.IO channel of its own: no cross-talk
    )
    migrated = processes.run("db-upgrade", "db", "upgrade")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    # The Socket.IO client signs in as an elite user: each alert at once (anonymous gets the free plan's batches).
    created = processes.run("create-user", "admin", "create-user", "--email", ELITE_EMAIL, "--plan", "elite",
                            "--password", ELITE_PASSWORD)
    assert created.returncode == 0, created.stdout + created.stderr

    # Paper trading runs on whichever worker holds its lease (the other takes over if it dies).
    workers = [processes.start("worker-1", "worker"), processes.start("worker-2", "worker")]
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports, 1):
        processes.start(f"api-{i}", "api", "--port", str(port))
    bases = [f"http://127.0.0.1:{port}" for port in ports]

    sio = socketio.AsyncClient(reconnection=False)
    received: dict[str, list[Any]] = {"market": [], "volume-alert": []}
    sio.on("market", lambda data: received["market"].append(data))
    sio.on("volume-alert", lambda data: received["volume-alert"].append(data))
    db = await asyncpg.connect(pg_dsn)
    sampler: asyncio.Task[None] | None = None
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            # --- everyone up before the source publishes: a new consumer group starts at the stream's end ---
            # Redis lists a consumer only once it was served something, so "subscribed" is read off the log line
            # each worker writes after its last subscription, plus the groups being there.
            async def workers_joined() -> bool:
                groups = {_text(g["name"]) for g in await redis_client.xinfo_groups(CANDLES)}
                scanners = [g for g in groups if g.startswith(SCANNER_GROUP_PREFIX)]
                return (set(SHARED_WORKER_GROUPS) <= groups and len(scanners) == len(workers)
                        and all(w.log_has("worker consumers subscribed") for w in workers))

            await eventually(workers_joined, deadline_s=60, what="both workers in the candle consumer groups",
                             check=processes.check_alive)
            for base in bases:
                await eventually(functools.partial(_ready, http, base), deadline_s=60, what=f"{base}/health/ready",
                                 check=processes.check_alive)
            signin = await http.post(f"{bases[1]}/api/v1/auth/signin",
                                     json={"email": ELITE_EMAIL, "password": ELITE_PASSWORD})
            assert signin.status_code == 200, signin.text
            await sio.connect(bases[1], wait_timeout=10, auth={"token": signin.json()["access_token"]})

            processes.start("ingest", "ingest", "--source", "replay")

            # Which worker consumers ever hold candle messages: evidence that the two share the stream.
            holders: set[str] = set()

            async def sample_holders() -> None:
                while True:
                    holders.update(n for n, c in (await _pending_by_consumer(
                        redis_client, CANDLES, "market-recorder")).items() if c)
                    await asyncio.sleep(0.01)

            sampler = asyncio.create_task(sample_holders())

            # --- both APIs serve the live table ---
            for base in bases:
                rows = await eventually(functools.partial(_rows, http, base), deadline_s=60, what=f"{base} market rows",
                                        check=processes.check_alive)
                assert all(row["symbol"].endswith("USDT") for row in rows), rows[0]

            # --- a volume alert, stored by a worker and readable on both APIs ---
            alerts = await eventually(
                lambda: _alerts(http, bases[0]), deadline_s=90, what="a stored volume alert",
                check=processes.check_alive,
            )
            assert (await _alerts(http, bases[1])), "API #2 does not see the alerts API #1 serves"
            assert any(a["alertType"] == "SPIKE" for a in alerts)

            # --- Socket.IO through API #2: table updates and the alert (fanned out from whichever API emitted) ---
            await eventually(lambda: _ready_list(received["market"]), deadline_s=30, what="a Socket.IO `market` event")
            await eventually(
                lambda: _ready_list(received["volume-alert"]), deadline_s=30, what="a Socket.IO `volume-alert` event"
            )
            first = received["volume-alert"][0]
            assert {"symbol", "alertType", "hourTimestamp", "currentVolume"} <= set(first)

            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            sampler = None
            for worker in workers:
                assert any(_worker_consumer(n, worker) for n in holders), (
                    f"{worker.name} never held a candle message: the workers did not share the stream ({holders})"
                )

            await _assert_alerts_sound(db, pg_dsn)

            # Every stored alert reaches the client exactly once: published once (by the worker whose insert won),
            # emitted once (by the one API whose broadcast consumer took it), fanned out once through Redis.
            async def all_alerts_pushed() -> bool:
                return _keys(received["volume-alert"]) >= await _stored_keys(db)

            await eventually(all_alerts_pushed, deadline_s=30, what="every stored alert on the Socket.IO client")
            pushed = [_key(a) for a in received["volume-alert"]]
            assert len(pushed) == len(set(pushed)), f"alerts pushed more than once: {sorted(pushed)}"

            # --- SIGKILL one worker while it holds unacknowledged messages ---
            victim, survivor = workers
            held = await _freeze_holding_messages(redis_client, victim)
            assert held, f"{victim.name} never held a message in the shared groups while frozen"
            kill_market_ms = await _newest_alert_scan(db)
            victim.kill_hard()

            # Alerts go on: a scan after the kill stores new alerts (the survivor's, the only worker left).
            async def alert_after_kill() -> int | None:
                newest = await _newest_alert_scan(db)
                return newest if newest > kill_market_ms else None

            await eventually(alert_after_kill, deadline_s=90, what="an alert stored after the worker was killed",
                             check=processes.check_alive)

            # The survivor claims what the dead worker held: once idle for PULSE_BUS_CLAIM_IDLE_MS (5 s here),
            # checked every claim_idle_ms / 2.
            async def victim_released() -> bool:
                return not await _held_by(redis_client, victim)

            await eventually(victim_released, deadline_s=45, what=f"the survivor to claim the dead worker's pending "
                             f"messages {held}", check=processes.check_alive)
            await _assert_alerts_sound(db, pg_dsn)
            await eventually(all_alerts_pushed, deadline_s=30, what="every stored alert on the Socket.IO client")
            pushed = [_key(a) for a in received["volume-alert"]]
            assert len(pushed) == len(set(pushed)), f"alerts pushed more than once: {sorted(pushed)}"
            # Both workers scanned every boundary; each alert was published by the worker whose insert stored it.
            published = _published_by_workers(workers)
            assert sorted(published) == sorted(await _stored_keys_by_scan(db)), (
                "the workers' published alerts differ from the stored ones (a duplicate or a missing publish)")
            assert survivor.alive()
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sio.disconnect(), timeout=10)
        await db.close()


RESTART_KILL_AFTER = REPLAY_START + timedelta(minutes=30)  # 21:10, mid-way through the cascade hour
RESTART_CHECK_UNTIL = REPLAY_START + timedelta(minutes=60)  # 21:40: past the HALF_UPDATEs of 21:30
MINUTE_MS, HOUR_MS = 60_000, 3_600_000


async def test_restarting_every_worker_mid_hour_loses_no_alert(
    pg_url: tuple[str, str], redis_client: redis.Redis, processes: Processes
) -> None:
    """Both workers SIGKILLed at 21:10 market time and restarted ~6 market minutes later (the issue's fault run):
    the alerts stored through 21:40 are exactly those a detector raises scanning the stored candles without a
    break, from the workers' first scan on, every 5 minutes (the boundaries missed while down included)."""
    sa_url, pg_dsn = pg_url
    processes.env.update(
        PULSE_DATABASE_URL=sa_url, PULSE_BUS_URL=REDIS_URL, PULSE_DATA_DIR=str(processes.cwd / "var"),
        PULSE_INGEST_API_KEY="e2e-key", PULSE_REPLAY_START=REPLAY_START.isoformat(), PULSE_BUS_CLAIM_IDLE_MS="5000",
        PULSE_DEPLOYMENT=DEPLOYMENT,
    )
    migrated = processes.run("db-upgrade", "db", "upgrade")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    # The Socket.IO client signs in as an elite user: each alert at once (anonymous gets the free plan's batches).
    created = processes.run("create-user", "admin", "create-user", "--email", ELITE_EMAIL, "--plan", "elite",
                            "--password", ELITE_PASSWORD)
    assert created.returncode == 0, created.stdout + created.stderr
    db = await asyncpg.connect(pg_dsn)
    try:
        first = [processes.start(f"worker-{i}", "worker") for i in (1, 2)]
        await _workers_subscribed(redis_client, first, processes)
        processes.start("ingest", "ingest", "--source", "replay")

        kill_ms = _ms(RESTART_KILL_AFTER)
        await eventually(lambda: _scanned_through(db, kill_ms), deadline_s=120, what="the scan at 21:10",
                         check=processes.check_alive)
        for worker in first:
            worker.kill_hard()
        await asyncio.sleep(6)  # six market minutes at the replay's 60×: the scan at 21:15 is due while down
        second = [processes.start(f"worker-{i}", "worker") for i in (3, 4)]
        until_ms = _ms(RESTART_CHECK_UNTIL)
        await eventually(lambda: _scanned_through(db, until_ms), deadline_s=120, what="the scan at 21:40",
                         check=processes.check_alive)
        caught_up = re.compile(r"missed_boundaries\W+[1-9]")
        assert any(caught_up.search(_ANSI.sub("", w.log_text())) for w in second), (
            "no restarted scanner caught up a boundary missed while the workers were down")

        start_ms = min(_first_scan(w) for w in first)
        expected = _alert_summary(await _uninterrupted_alerts(db, start_ms, until_ms))
        stored = _alert_summary([dict(r) for r in await db.fetch(
            "SELECT symbol, alert_type, timestamp, hour_timestamp, current_volume, previous_volume FROM volume_alerts "
            "WHERE timestamp <= $1", until_ms, timeout=QUERY_TIMEOUT_S)])
        assert any(t == "SPIKE" and kill_ms < ts <= until_ms for _s, t, ts, _h in expected), "nothing to lose"
        assert sorted(stored) == sorted(expected)
        for key, volumes in expected.items():  # the same sums, up to float addition order
            assert stored[key] == pytest.approx(volumes, rel=1e-9), key
    finally:
        await db.close()


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _workers_subscribed(client: redis.Redis, workers: list[Proc], processes: Processes) -> None:
    async def joined() -> bool:
        groups = {_text(g["name"]) for g in await client.xinfo_groups(CANDLES)}
        scanners = [g for g in groups if g.startswith(SCANNER_GROUP_PREFIX)]
        return len(scanners) >= len(workers) and all(w.log_has("worker consumers subscribed") for w in workers)

    await eventually(joined, deadline_s=60, what="the workers in their consumer groups", check=processes.check_alive)


async def _scanned_through(db: asyncpg.Connection, t_ms: int) -> bool:
    value = await db.fetchval("SELECT max(last_scan_ms) FROM detection_scans", timeout=QUERY_TIMEOUT_S)
    return value is not None and int(value) >= t_ms


def _first_scan(worker: Proc) -> int:
    found = re.search(r"first_scan_ms\W+(\d+)", _ANSI.sub("", worker.log_text()))
    assert found, f"{worker.name} never logged its first scan"
    return int(found.group(1))


async def _uninterrupted_alerts(db: asyncpg.Connection, start_ms: int, until_ms: int) -> list[dict[str, Any]]:
    """What one scanner running without a break raises over the stored candles, scanning start_ms … until_ms."""
    from marketpulse.detection.volume_spike import VolumeSpikeDetector

    rows = await db.fetch(
        "SELECT symbol, open_time, open, close, quote_volume FROM candles WHERE interval = '1m' AND open_time < $1 "
        "ORDER BY open_time", until_ms, timeout=QUERY_TIMEOUT_S)
    minutes = {int(r["open_time"]) for r in rows}
    assert len(minutes) == (until_ms - min(minutes)) // MINUTE_MS, "the recorder left a minute out"
    detector, alerts, i = VolumeSpikeDetector(), [], 0
    for boundary in range(start_ms, until_ms + 1, 5 * MINUTE_MS):
        while i < len(rows) and int(rows[i]["open_time"]) + MINUTE_MS <= boundary:
            r = rows[i]
            detector.add_bar(r["symbol"], int(r["open_time"]), MINUTE_MS, r["open"], r["close"], r["quote_volume"])
            i += 1
        alerts += [{"symbol": a.symbol, "alert_type": a.alert_type, "timestamp": a.timestamp,
                    "hour_timestamp": a.hour_timestamp, "current_volume": a.current_volume,
                    "previous_volume": a.previous_volume} for a in detector.scan(boundary)]
    return alerts


def _alert_summary(alerts: list[dict[str, Any]]) -> dict[tuple[str, str, int, int], tuple[float, float]]:
    """What two runs must agree on (prices come from tickers live, from candle closes offline: left out)."""
    return {(a["symbol"], a["alert_type"], int(a["timestamp"]), int(a["hour_timestamp"])):
            (a["current_volume"], a["previous_volume"]) for a in alerts}


async def _ready(http: httpx.AsyncClient, base: str) -> bool:
    return (await http.get(f"{base}/health/ready")).status_code == 200


async def _rows(http: httpx.AsyncClient, base: str) -> list[dict[str, Any]]:
    body = await _get_json(http, f"{base}/api/v1/market/data")
    rows: list[dict[str, Any]] = body["data"]
    return rows


async def _alerts(http: httpx.AsyncClient, base: str) -> list[dict[str, Any]]:
    body = await _get_json(http, f"{base}/api/v1/volume-alerts?limit=500")
    alerts: list[dict[str, Any]] = body["data"]
    return alerts


async def _ready_list(items: list[Any]) -> bool:
    return bool(items)


AlertKey = tuple[str, int, str]


def _key(alert: dict[str, Any]) -> AlertKey:
    return alert["symbol"], int(alert["hourTimestamp"]), alert["alertType"]


def _keys(alerts: list[dict[str, Any]]) -> set[AlertKey]:
    return {_key(a) for a in alerts}


async def _stored_keys(db: asyncpg.Connection) -> set[AlertKey]:
    rows = await db.fetch("SELECT symbol, hour_timestamp, alert_type FROM volume_alerts", timeout=QUERY_TIMEOUT_S)
    return {(r["symbol"], int(r["hour_timestamp"]), r["alert_type"]) for r in rows}


async def _stored_keys_by_scan(db: asyncpg.Connection) -> list[tuple[int, str, str]]:
    rows = await db.fetch("SELECT timestamp, symbol, alert_type FROM volume_alerts", timeout=QUERY_TIMEOUT_S)
    return [(int(r["timestamp"]), r["symbol"], r["alert_type"]) for r in rows]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SCAN_MS = re.compile(r"scan_ms\W+(\d+)")
_ALERTS = re.compile(r"alerts\W+\[([^\]]*)\]")


def _published_by_workers(workers: list[Proc]) -> list[tuple[int, str, str]]:
    """(scan time, symbol, type) of every alert a worker stored and published, from the line each scan logs
    ("volume alerts" with scan_ms and alerts=['BTCUSDT/SPIKE', ...])."""
    published: list[tuple[int, str, str]] = []
    for worker in workers:
        for line in _ANSI.sub("", worker.log_text()).splitlines():
            scan, alerts = _SCAN_MS.search(line), _ALERTS.search(line)
            if "volume alerts" not in line or scan is None or alerts is None:
                continue
            for item in alerts.group(1).split(","):
                symbol, _, kind = item.strip().strip("'\"").partition("/")
                published.append((int(scan.group(1)), symbol, kind))
    return published


async def _newest_alert_scan(db: asyncpg.Connection) -> int:
    value = await db.fetchval("SELECT max(timestamp) FROM volume_alerts", timeout=QUERY_TIMEOUT_S)
    return int(value) if value is not None else 0


async def _assert_alerts_sound(db: asyncpg.Connection, dsn: str) -> None:
    """Each (symbol, hour, type) once; each SPIKE's volumes are those of every stored candle of its hours.

    The second half is what two workers sharing one candle stream must not break: a detector that saw only its
    share of the minutes would report (or miss) spikes on partial volumes. The recorder may still be writing the
    burst of history the replay publishes at start, so the comparison is retried until the candles are in."""
    problems: list[str] = []

    async def sound() -> bool:
        problems[:] = await _alert_problems(db)
        return not problems

    try:
        await eventually(sound, deadline_s=30, what="stored alerts to match the stored candles")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {problems[:5]}; database sessions: {await _pg_activity(dsn)}") from None


async def _alert_problems(db: asyncpg.Connection) -> list[str]:
    problems = [
        f"stored {r['count']}×: {r['symbol']} {r['hour_timestamp']} {r['alert_type']}"
        for r in await db.fetch(
            "SELECT symbol, hour_timestamp, alert_type, count(*) FROM volume_alerts "
            "GROUP BY symbol, hour_timestamp, alert_type HAVING count(*) > 1",
            timeout=QUERY_TIMEOUT_S,
        )
    ]
    # Per SPIKE: the quote volume of the stored 1-minute candles of its hour that closed by its scan, and of the
    # whole previous hour (candle and alert times are both epoch ms).
    spikes = await db.fetch(
        """
        WITH s AS (
            SELECT symbol, current_volume, previous_volume, timestamp,
                   hour_timestamp AS hour_ms, timestamp AS scan_ms
            FROM volume_alerts WHERE alert_type = 'SPIKE'
        )
        SELECT s.symbol, s.timestamp, s.current_volume, s.previous_volume,
               (SELECT coalesce(sum(c.quote_volume), 0) FROM candles c
                 WHERE c.symbol = s.symbol AND c.interval = '1m'
                   AND c.open_time >= s.hour_ms AND c.open_time + 60000 <= s.scan_ms) AS current_stored,
               (SELECT coalesce(sum(c.quote_volume), 0) FROM candles c
                 WHERE c.symbol = s.symbol AND c.interval = '1m'
                   AND c.open_time >= s.hour_ms - 3600000 AND c.open_time < s.hour_ms) AS previous_stored
        FROM s
        """,
        timeout=QUERY_TIMEOUT_S,
    )
    if not spikes:
        problems.append("no SPIKE stored")
    for spike in spikes:
        where = f"{spike['symbol']} at {spike['timestamp']}"
        current, stored_current = spike["current_volume"], float(spike["current_stored"])
        previous, stored_previous = spike["previous_volume"], float(spike["previous_stored"])
        # The previous hour must be complete before a detector compares against it, so it matches exactly.
        if previous != pytest.approx(stored_previous, rel=1e-6):
            problems.append(f"{where}: previousVolume {previous}, stored candles {stored_previous}")
        # The start-up scan included: a scanner waits until its consumer has worked through the replay's burst.
        if current != pytest.approx(stored_current, rel=1e-6):
            problems.append(f"{where}: currentVolume {current}, stored candles {stored_current}")
    return problems


async def _pg_activity(dsn: str) -> list[str]:
    """What the test database's sessions are doing (for a failure message: a query waiting on a lock shows here)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid, state, wait_event_type, wait_event, now() - query_start AS running, left(query, 120) AS q "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            timeout=QUERY_TIMEOUT_S,
        )
    finally:
        await conn.close()
    return [repr(dict(r)) for r in rows]


async def _held_by(client: redis.Redis, worker: Proc) -> dict[str, int]:
    """Messages the worker's consumers have read and not acknowledged, per stream/group, in the shared groups."""
    held: dict[str, int] = {}
    for stream in (CANDLES, TICKERS):
        for group in SHARED_WORKER_GROUPS:
            pending = await _pending_by_consumer(client, stream, group)
            count = sum(c for n, c in pending.items() if _worker_consumer(n, worker))
            if count:
                held[f"{stream}/{group}"] = count
    return held


async def _freeze_holding_messages(client: redis.Redis, worker: Proc) -> dict[str, int]:
    """SIGSTOP the worker and wait until it holds unacknowledged messages, so the SIGKILL that follows leaves them
    pending for the survivor to claim. Redis hands new entries to a blocked XREADGROUP at XADD time, whether or not
    the reading process runs, so a frozen worker's blocked consumers soon hold some."""
    os.kill(worker.popen.pid, signal.SIGSTOP)
    return await eventually(lambda: _held_by(client, worker), deadline_s=30, what=f"{worker.name} to hold messages")
