"""Every long-running command stops cleanly on Ctrl-C (SIGINT) and SIGTERM (systemd, container runtimes): in under
5 s, exit code 0, and no traceback or error line in its log, while it is busy (market data flowing, a Socket.IO
client connected to the API).

`pulse demo` runs as `make run` starts it; `pulse ingest`, `pulse worker` and `pulse api` run side by side on a
Redis bus of this test's own, each stopped while the others keep going.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import socketio

from e2e.support import Proc, Processes, eventually, free_port
from support.redis_ns import E2E_REDIS_URL, new_deployment, unlink_namespace

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

STOP_WITHIN_S = 5.0
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# uvicorn's "ERROR:", structlog's "[error ]"/"[critical ]", and any traceback.
BAD_LINE = re.compile(r"Traceback|ERROR|CRITICAL|\[(error|critical)\s*\]")


def bad_lines(proc: Proc) -> list[str]:
    return [line for line in ANSI.sub("", proc.log_text()).splitlines() if BAD_LINE.search(line)]


async def stop_and_check(proc: Proc, sig: signal.Signals) -> None:
    assert proc.alive(), proc.log_text()[-3000:]
    started = time.monotonic()
    proc.popen.send_signal(sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(proc.popen.wait, 15)
    took = time.monotonic() - started
    proc.expected_dead = True
    assert proc.popen.returncode == 0, f"{proc.name}: exit {proc.popen.returncode}\n{proc.log_text()[-3000:]}"
    assert took < STOP_WITHIN_S, f"{proc.name} took {took:.1f}s to stop on {sig.name}"
    assert not bad_lines(proc), f"{proc.name} logged on {sig.name}: {bad_lines(proc)}"


async def connected_client(base: str, token: str | None = None) -> tuple[socketio.AsyncClient, asyncio.Event]:
    """A dashboard-like Socket.IO client that has received a live `market` event (so the API is mid-stream); with
    an elite user's `token` it gets each update (anonymous clients get the free plan's table every 15 minutes)."""
    sio = socketio.AsyncClient(reconnection=False)
    got_market = asyncio.Event()
    sio.on("market", lambda _data: got_market.set())
    await sio.connect(base, wait_timeout=10, auth={"token": token} if token else None)
    return sio, got_market


ELITE_EMAIL, ELITE_PASSWORD = "elite@example.com", "Elite-Trader-2025!"


async def elite_token(http: httpx.AsyncClient, base: str, processes: Processes) -> str:
    """An elite user made with `pulse admin create-user`, signed in through the API."""
    created = processes.run("create-user", "admin", "create-user", "--email", ELITE_EMAIL, "--plan", "elite",
                            "--password", ELITE_PASSWORD)
    assert created.returncode == 0, created.stdout + created.stderr
    signin = await http.post(f"{base}/api/v1/auth/signin", json={"email": ELITE_EMAIL, "password": ELITE_PASSWORD})
    assert signin.status_code == 200, signin.text
    token: str = signin.json()["access_token"]
    return token


async def wait_ready(http: httpx.AsyncClient, base: str, processes: Processes) -> None:
    async def ready() -> bool:
        return (await http.get(f"{base}/health/ready")).status_code == 200

    await eventually(ready, deadline_s=120, what=f"{base}/health/ready", check=processes.check_alive)


@pytest.mark.parametrize("sig", SIGNALS)
async def test_demo_stops_cleanly(sig: signal.Signals, processes: Processes, tmp_path: Path) -> None:
    processes.env.update(PULSE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
                         PULSE_DATA_DIR=str(tmp_path / "data"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    demo = processes.start("demo", "demo", "--port", str(port))
    async with httpx.AsyncClient(timeout=10) as http:
        await wait_ready(http, base, processes)
    sio, got_market = await connected_client(base)
    try:
        await asyncio.wait_for(got_market.wait(), timeout=60)
        await eventually(lambda: demo.log_has("demo strategy deployed"), deadline_s=120, what="the demo seeded",
                         check=processes.check_alive)
        await stop_and_check(demo, sig)
    finally:
        await sio.disconnect()


@pytest.mark.redis
@pytest.mark.parametrize("sig", SIGNALS)
async def test_ingest_worker_and_api_each_stop_cleanly(
    sig: signal.Signals, processes: Processes, tmp_path: Path
) -> None:
    deployment = new_deployment("signals")  # keys and channel of its own on the shared server
    processes.env.update(
        PULSE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", PULSE_DATA_DIR=str(tmp_path / "var"),
        PULSE_BUS_URL=E2E_REDIS_URL, PULSE_INGEST_API_KEY="e2e-key", PULSE_DEPLOYMENT=deployment,
    )
    try:
        assert processes.run("db-upgrade", "db", "upgrade").returncode == 0
        worker = processes.start("worker", "worker")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = processes.start("api", "api", "--port", str(port))
        await eventually(lambda: worker.log_has("worker consumers subscribed"), deadline_s=60, what="worker up",
                         check=processes.check_alive)
        async with httpx.AsyncClient(timeout=10) as http:
            await wait_ready(http, base, processes)
            token = await elite_token(http, base, processes)
        sio, got_market = await connected_client(base, token)
        try:
            ingest = processes.start("ingest", "ingest", "--source", "replay")
            await eventually(lambda: ingest.log_has("replay starting"), deadline_s=120, what="the replay publishing",
                             check=processes.check_alive)
            got_market.clear()  # the API may greet a client with the table it has: wait for a live update
            await asyncio.wait_for(got_market.wait(), timeout=60)
            # Each stopped while the others run on (the worker and the API mid-stream).
            await stop_and_check(worker, sig)
            await stop_and_check(api, sig)
            await stop_and_check(ingest, sig)
        finally:
            await sio.disconnect()
    finally:
        await unlink_namespace(E2E_REDIS_URL, deployment)
