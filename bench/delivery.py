"""Notification delivery: notifications per minute from the outbox to a local webhook receiver, and event →
delivered latency, on PostgreSQL with two dispatcher processes and on SQLite, beside a baseline in the same run.

    .venv/bin/python -m bench.delivery [--notifications 20000] [--pg-dsn postgresql://postgres@127.0.0.1:5432/postgres]
                                       [--write docs/benchmarks.md]

The receiver is its own process (aiohttp): it answers 200, counts distinct `Idempotency-Key`s and measures latency
as its arrival time minus the notification's `created_at_ms` (the enqueue's commit, same machine clock).
Baseline: the bare receiver hammered by httpx from one process, 64 requests in flight, same body size and headers
(the most a single Python client gets from this receiver). Throughput: N notifications over 200 webhook
destinations are enqueued (`outbox.enqueue`), then the dispatcher processes start; the figure is N / time to the
last distinct key. Latency: with the dispatchers idle, events are enqueued at a steady 100 per second for 10 s, one
notification each (instant delivery), and p50/p99 of enqueue → arrival are reported.
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
from pathlib import Path
from typing import Any

from bench.scratch_db import drop_pg, pg_database

DESTINATIONS = 200
LATENCY_RATE, LATENCY_SECONDS = 100, 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the receiver (a process of its own) ---------------------------------------------------------------------

def serve_receiver(port: int) -> None:
    import orjson
    from aiohttp import web

    keys: set[str] = set()
    latencies: list[int] = []
    posts = [0]

    async def hook(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        now = time.time_ns() // 1_000_000
        posts[0] += 1
        key = request.headers.get("Idempotency-Key", "")
        if key not in keys:
            keys.add(key)
            if body.get("created_at_ms"):
                latencies.append(now - int(body["created_at_ms"]))
        return web.json_response({"ok": True})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"distinct": len(keys), "posts": posts[0], "latencies": latencies})

    async def reset(_: web.Request) -> web.Response:
        keys.clear()
        latencies.clear()
        posts[0] = 0
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook/{n}", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- a dispatcher (a process of its own) ---------------------------------------------------------------------

def run_dispatcher(url: str) -> None:
    from marketpulse.clock import SystemClock
    from marketpulse.delivery.dispatcher import Dispatcher
    from marketpulse.settings import Settings
    from marketpulse.storage.database import create_engine, session_factory

    settings = Settings(database_url=url, webhook_allow_private=True, delivery_batch_size=500)

    async def main() -> None:
        engine = create_engine(url)
        d = Dispatcher(session_factory(engine), SystemClock(), settings)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await d.run(stop)
        await d.close()
        await engine.dispose()

    asyncio.run(main())


# --- the run ---------------------------------------------------------------------------------------------------

async def baseline(base: str, n: int) -> float:
    import httpx

    body = b'{"type":"notification","id":"' + b"k" * 64 + b'","title":"alert","text":"' + b"x" * 120 + b'"}'
    gate = asyncio.Semaphore(64)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as http:
        async def one(i: int) -> None:
            async with gate:
                await http.post(f"{base}/hook/{i % DESTINATIONS}", content=body,
                                headers={"Idempotency-Key": f"base-{i}", "Content-Type": "application/json"})

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start) * 60


async def prepare(url: str, base: str) -> Any:
    from marketpulse.delivery.tables import DestinationRow
    from marketpulse.storage.database import create_engine, session_factory
    from marketpulse.storage.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        for d in range(DESTINATIONS):
            s.add(DestinationRow(id=f"bench-{d}", owner_id=f"user-{d}", channel="webhook", state="verified",
                                 address=f"{base}/hook/{d}", code_attempts=0, created_at_ms=1))
    return engine, sessions


async def enqueue_many(sessions: Any, first: int, count: int, per_tx: int = 200) -> None:
    from marketpulse.delivery.outbox import enqueue

    for start in range(first, first + count, per_tx):
        async with sessions.begin() as s:
            for i in range(start, min(start + per_tx, first + count)):
                d = i % DESTINATIONS
                await enqueue(s, owner_id=f"user-{d}", rule_id=f"rule-{d}", event_key=f"e{i}",
                              destination_ids=[f"bench-{d}"], message={"title": "alert", "text": "x" * 120})


async def stats(http: Any, base: str) -> dict[str, Any]:
    return dict((await http.get(f"{base}/stats")).json())


async def wait_for(http: Any, base: str, n: int, timeout_s: float = 900) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        got = await stats(http, base)
        if got["distinct"] >= n:
            return got
        await asyncio.sleep(0.05)
    raise TimeoutError(f"only {got['distinct']} of {n} delivered")


def start_dispatchers(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-m", "bench.delivery", "--dispatch", url]) for _ in range(count)]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


async def measure(name: str, url: str, base: str, n: int, dispatchers: int) -> dict[str, Any]:
    import httpx

    engine, sessions = await prepare(url, base)
    async with httpx.AsyncClient(timeout=30) as http:
        await http.post(f"{base}/reset")
        await enqueue_many(sessions, 0, n)
        procs = start_dispatchers(url, dispatchers)
        try:
            start = time.perf_counter()
            got = await wait_for(http, base, n)
            elapsed = time.perf_counter() - start  # includes the dispatchers' start-up (~1 s): a floor, not padding
            await http.post(f"{base}/reset")
            for second in range(LATENCY_SECONDS):
                tick = time.perf_counter()
                await enqueue_many(sessions, n + second * LATENCY_RATE, LATENCY_RATE, per_tx=1)
                await asyncio.sleep(max(0.0, 1 - (time.perf_counter() - tick)))
            lat = await wait_for(http, base, LATENCY_RATE * LATENCY_SECONDS)
        finally:
            stop(procs)
    await engine.dispose()
    lats = sorted(lat["latencies"])
    return {"name": name, "dispatchers": dispatchers, "n": n, "seconds": elapsed, "per_min": n / elapsed * 60,
            "repeats": got["posts"] - got["distinct"], "p50": statistics.median(lats),
            "p99": lats[min(len(lats) - 1, int(len(lats) * 0.99))]}


def table(base_rate: float, rows: list[dict[str, Any]], n_base: int) -> str:
    lines = ["| path | dispatchers | notifications | seconds | per minute | repeats | p50 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| baseline: bare receiver, httpx, 64 in flight | — | {n_base:,} | — | {base_rate:,.0f} | — | — | — |"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['dispatchers']} | {r['n']:,} | {r['seconds']:.1f} | {r['per_min']:,.0f} | "
                     f"{r['repeats']} | {r['p50']:.0f} | {r['p99']:.0f} |")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> str:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    receiver = subprocess.Popen([sys.executable, "-m", "bench.delivery", "--receiver", str(port)])  # noqa: ASYNC220
    try:
        import httpx

        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    await http.get(f"{base}/stats")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
            await http.post(f"{base}/reset")
        n_base = 10_000
        base_rate = await baseline(base, n_base)
        rows = []
        if not args.skip_pg:
            url, name = await pg_database(args.pg_dsn)
            try:
                rows.append(await measure("PostgreSQL outbox → webhook", url, base, args.notifications, 2))
            finally:
                await drop_pg(args.pg_dsn, name)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            rows.append(await measure("SQLite outbox → webhook", url, base, args.notifications // 2, 1))
        return table(base_rate, rows, n_base)
    finally:
        receiver.send_signal(signal.SIGINT)
        receiver.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument("--pg-dsn", default=os.environ.get("PULSE_TEST_PG_DSN",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dispatch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_receiver(args.receiver)
    elif args.dispatch:
        run_dispatcher(args.dispatch)
    else:
        print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
