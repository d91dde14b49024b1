"""TradingView webhooks in: seed 001's load test and the sustained acknowledgement rate of one API process, beside a
trivial FastAPI endpoint measured in the same run.

    .venv/bin/python -m bench.webhooks [--burst 1000] [--sustained 3000] [--skip-pg] [--skip-sqlite]
                                       [--pg-dsn postgresql://postgres@127.0.0.1:5432/postgres]
                                       [--redis redis://127.0.0.1:6379/3]

Each path is one uvicorn process (the app as `pulse api` builds it: `create_app` on a `Runtime`; per-config flood
limit raised out of the way) on SQLite (in-process bus) or on PostgreSQL with the Redis bus and rate-limit storage.
Burst: N requests sent at once (N connections), each a distinct bar of one config, so every one must be stored;
the figure is how many were acknowledged, the p50/p95 acknowledgement time, then what is in `signal_history`
and, after the worker's processing (`SignalWorker.drain`, in this process), the outbox rows queued for the one
subscriber (stored and delivered counts must both equal N). Sustained: M requests, 64 in flight, acknowledged
per second; the baseline is a bare FastAPI `POST /ping` in its own uvicorn process, same client, same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.scratch_db import drop_pg, pg_database

T0 = 1_760_000_000_000 - 1_760_000_000_000 % 60_000  # bars counted back from here, one minute each
TOKEN = "bench-token-" + "x" * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the servers (processes of their own) ----------------------------------------------------------------------

def serve_api(url: str, port: int, bus: str, limits: str, data_dir: str) -> None:
    import uvicorn

    from marketpulse.api.app import create_app
    from marketpulse.runtime import Runtime
    from marketpulse.settings import Settings

    settings = Settings(database_url=url, bus_url=bus, rate_limit_storage=limits, webhook_rate_per_minute=1_000_000,
                        env="dev", data_dir=Path(data_dir), deployment=f"bench-{uuid.uuid4().hex[:6]}")
    runtime = Runtime.open(settings)
    runtime.services  # noqa: B018  (built before the first request, as `pulse api` does)
    uvicorn.run(create_app(runtime), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_trivial(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the run ---------------------------------------------------------------------------------------------------

async def prepare(url: str) -> None:
    """Migrate, then one UT Bot config on BTCUSDT 1m (its token fixed) and one subscriber with an email channel."""
    from marketpulse.delivery.tables import DestinationRow
    from marketpulse.signals.core import config_params, params_key
    from marketpulse.signals.service import token_hash
    from marketpulse.signals.tables import SignalConfigRow, SignalSubscriptionRow
    from marketpulse.storage.database import create_engine, session_factory
    from marketpulse.storage.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    params = config_params("ut_bot", {"key_value": 2.0})
    async with session_factory(engine).begin() as s:
        s.add(SignalConfigRow(id="bench-config", symbol="BTCUSDT", timeframe="1m", strategy="ut_bot", params=params,
                              params_key=params_key(params), token=TOKEN, token_hash=token_hash(TOKEN), active=True,
                              computed=False, duplicates=0, created_at_ms=1, updated_at_ms=1))
        s.add(DestinationRow(id="bench-dest", owner_id="bench-user", channel="email", state="verified",
                             address="bench@example.com", code_attempts=0, created_at_ms=1))
        s.add(SignalSubscriptionRow(id="bench-sub", owner_id="bench-user", config_id="bench-config",
                                    channels=["bench-dest"], active=True, created_at_ms=1, updated_at_ms=1))
    await engine.dispose()


def body(i: int) -> bytes:
    # A distinct closed bar per request; max_lag keeps old bars from being stale (they must all be delivered).
    return (b'{"symbol": "BINANCE:BTCUSDT.P", "timeframe": "1", "action": "buy", "price": 62150.5, "time": '
            + str(T0 - i * 60_000).encode() + b', "max_lag": 1000000000, "strategy": "ut_bot"}')


async def wait_up(base: str, path: str) -> None:
    import httpx

    deadline = time.monotonic() + 180  # importing the app takes a while on a loaded machine
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                await http.post(f"{base}{path}", content=b"{}")
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    raise TimeoutError(f"{base} did not start")


async def burst(base: str, n: int, first: int) -> tuple[int, list[float]]:
    import httpx

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    # A long client timeout: the figure is what the server acknowledges and stores, however slowly on a busy
    # machine (TradingView itself gives up after 3 s: the p95 column says how far from that a run is).
    async with httpx.AsyncClient(limits=limits, timeout=600) as http:
        async def one(i: int) -> tuple[bool, float]:
            start = time.perf_counter()
            try:
                resp = await http.post(f"{base}/webhook/tradingview/{TOKEN}", content=body(first + i),
                                       headers={"Content-Type": "application/json"})
            except httpx.TimeoutException:
                return False, (time.perf_counter() - start) * 1000
            ok = resp.status_code == 200 and resp.json()["status"] == "accepted"
            return ok, (time.perf_counter() - start) * 1000

        results = await asyncio.gather(*(one(i) for i in range(n)))
    return sum(ok for ok, _ in results), sorted(ms for _, ms in results)


async def sustained(url: str, n: int, payload: Any, in_flight: int = 64) -> float:
    import httpx

    gate = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=in_flight), timeout=60) as http:
        async def one(i: int) -> None:
            async with gate:
                for attempt in range(3):
                    try:
                        resp = await http.post(url, content=payload(i), headers={"Content-Type": "application/json"})
                        break
                    except httpx.TransportError:  # a keep-alive connection the server closed as it was reused:
                        if attempt == 2:          # send again, as TradingView does (a repeat is stored once)
                            raise
                assert resp.status_code == 200, resp.text

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start)


async def stored_and_delivered(url: str) -> tuple[int, int]:
    from sqlalchemy import func, select

    from marketpulse.bus.memory import MemoryBus
    from marketpulse.clock import SystemClock
    from marketpulse.delivery.tables import NotificationRow
    from marketpulse.settings import Settings
    from marketpulse.signals.service import SignalsService
    from marketpulse.signals.tables import SignalHistoryRow
    from marketpulse.signals.worker import SignalWorker
    from marketpulse.storage.database import create_engine, session_factory

    engine = create_engine(url)
    sessions = session_factory(engine)
    service = SignalsService(sessions, MemoryBus(), SystemClock(), Settings(database_url=url))
    await SignalWorker(service, service.bus).drain()
    async with sessions() as s:
        stored = await s.scalar(select(func.count()).select_from(SignalHistoryRow)) or 0
        delivered = await s.scalar(select(func.count()).select_from(NotificationRow)) or 0
    await engine.dispose()
    return stored, delivered


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.webhooks", *args])


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def measure(name: str, url: str, bus: str, limits: str, args: argparse.Namespace) -> dict[str, Any]:
    await prepare(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        api = spawn("--serve", url, str(port), bus, limits, tmp)
        try:
            await wait_up(base, "/webhook/tradingview/warm-up")
            await sustained(f"{base}/webhook/tradingview/{TOKEN}", 50, lambda i: body(10_000_000 + i), 8)  # warm
            acked, lats = await burst(base, args.burst, 0)
            rate = await sustained(f"{base}/webhook/tradingview/{TOKEN}", args.sustained,
                                   lambda i: body(args.burst + i))
        finally:
            stop(api)
    stored, delivered = await stored_and_delivered(url)
    total = 50 + args.burst + args.sustained
    return {"name": name, "n": args.burst, "acked": acked, "p50": statistics.median(lats),
            "p95": lats[int(len(lats) * 0.95) - 1], "stored": stored - total + args.burst,
            "delivered": delivered - total + args.burst, "rate": rate, "all_stored": stored == total,
            "all_delivered": delivered == total}


async def run(args: argparse.Namespace) -> str:
    port = free_port()
    trivial = spawn("--trivial", str(port))
    try:
        await wait_up(f"http://127.0.0.1:{port}", "/ping")
        await sustained(f"http://127.0.0.1:{port}/ping", 200, lambda i: b"{}", 8)
        baseline = await sustained(f"http://127.0.0.1:{port}/ping", args.sustained, lambda i: b"{}")
    finally:
        stop(trivial)
    rows = []
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            rows.append(await measure("SQLite, in-process bus", url, "memory://", "memory://", args))
    if not args.skip_pg:
        url, name = await pg_database(args.pg_dsn)
        try:
            rows.append(await measure("PostgreSQL + Redis bus", url, args.redis, args.redis, args))
        finally:
            await drop_pg(args.pg_dsn, name)
    return table(baseline, rows, args)


def table(baseline: float, rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"Burst: {args.burst:,} concurrent requests; sustained: {args.sustained:,} requests, 64 in flight.", "",
             "| path | burst acknowledged | stored | queued for delivery | ack p50 ms | ack p95 ms | sustained req/s "
             "| vs baseline |", "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| baseline: bare FastAPI `POST /ping` | — | — | — | — | — | {baseline:,.0f} | 100% |"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['acked']:,} / {r['n']:,} | {r['stored']:,} | {r['delivered']:,} | "
                     f"{r['p50']:.0f} | {r['p95']:.0f} | {r['rate']:,.0f} | {r['rate'] / baseline:.0%} |")
    lines.append("")
    lines.append("every request of the run stored: " + ", ".join(f"{r['name']}: {r['all_stored']}" for r in rows)
                 + "; every stored signal queued: " + ", ".join(f"{r['name']}: {r['all_delivered']}" for r in rows))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=1_000)
    parser.add_argument("--sustained", type=int, default=3_000)
    parser.add_argument("--pg-dsn", default=os.environ.get("PULSE_TEST_PG_DSN",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis", default=os.environ.get("PULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/3"))
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--trivial", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        url, port, bus, limits, data_dir = args.serve
        serve_api(url, int(port), bus, limits, data_dir)
    elif args.trivial:
        serve_trivial(args.trivial)
    else:
        print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
