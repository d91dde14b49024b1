"""Operating `pulse` as a person or a service manager does: a taken port, the built-in ingest key, logs in a file,
and a restarted demo, all through real OS processes."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sqlite3
from pathlib import Path

import httpx
import pytest

from e2e.support import PULSE, Processes, demo_admin_sign_in, eventually, free_port, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ANSI = re.compile(r"\x1b\[")
# Columns holding market times a row has seen; an order's expiry and a halt's end lie ahead on purpose. Accounts
# and backtest jobs live on the wall clock (a person signs up in 2026 while the replay plays 2025): not market data.
MARKET_TABLE = re.compile(r"^(candles|market_snapshots|open_interest|volume_alerts|detection_scans|paper_\w+)$")
MARKET_TIME_COLUMN = re.compile(
    r"^(open_time|time|as_of|timestamp|last_scan_ms|time_ms|last_bar_ms|opened_at_ms|.*(created|updated)_at_ms)$")


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("command", [["api", "--port", "{port}"], ["demo"]])
def test_a_taken_port_is_one_line_and_exit_2(processes: Processes, tmp_path: Path, command: list[str]) -> None:
    with _listening_socket() as taken:
        port = taken.getsockname()[1]
        processes.env.update(PULSE_INGEST_API_KEY="ops-key", PULSE_PORT=str(port),
                             PULSE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
        done = processes.run("cli", *[a.format(port=port) for a in command], timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"error: port {port} is in use: pass --port or set PULSE_PORT"]
    assert done.stdout == ""


@pytest.mark.parametrize("command", [["api"], ["ingest"]])
def test_the_built_in_ingest_key_is_refused_with_how_to_set_one(processes: Processes, command: list[str]) -> None:
    done = processes.run("cli", *command, "--port", str(free_port())) if command == ["api"] else \
        processes.run("cli", *command, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert "PULSE_INGEST_API_KEY" in line and "PULSE_ENV=dev" in line and "Traceback" not in line


async def test_with_pulse_env_dev_the_built_in_key_is_accepted(processes: Processes, tmp_path: Path) -> None:
    processes.env.update(PULSE_ENV="dev", PULSE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
                         PULSE_DATA_DIR=str(tmp_path / "var"))
    ingest = processes.start("ingest", "ingest")

    async def started() -> bool:
        return ingest.log_has("market source started")

    await eventually(started, deadline_s=60, what="the ingest process to start", check=processes.check_alive)
    ingest.stop()
    assert ingest.popen.returncode == 0, ingest.log_text()[-2000:]
    assert not ANSI.search(ingest.log_text())


async def test_a_log_read_through_a_pipe_is_plain_text(processes: Processes, tmp_path: Path) -> None:
    """Under systemd or `| tee`, stdout is a pipe: no colour codes there either."""
    env = {**processes.env, "PULSE_ENV": "dev", "PULSE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
           "PULSE_DATA_DIR": str(tmp_path / "var")}
    proc = await asyncio.create_subprocess_exec(str(PULSE), "ingest", env=env, cwd=tmp_path,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while not lines or b"market source started" not in lines[-1]:
                line = await proc.stdout.readline()  # type: ignore[union-attr]
                assert line, b"".join(lines).decode()  # EOF before the source started: the process died
                lines.append(line)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    log = (b"".join(lines) + rest).decode()
    assert proc.returncode == 0, log
    assert not ANSI.search(log), log


def _newest_market_time_ms(db: Path) -> int:
    """The latest market time any stored row carries, read with plain SQL over every table's time columns."""
    newest = 0
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]:
                if not MARKET_TABLE.match(table) or not MARKET_TIME_COLUMN.match(column):
                    continue
                value = conn.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()[0]
                newest = max(newest, int(value) + (60_000 if column == "open_time" else 0)) if value else newest
    return newest


async def _printed_admin(log: str) -> bool:
    return "demo admin: " in log


def _replay_start_ms(log: str) -> int:
    return int(re.findall(r"replay starting\s+market_time=(\d+)", log)[-1])


async def test_restarted_demo_resumes_market_time_and_logs_plain_text(processes: Processes, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    processes.env.update(PULSE_DATABASE_URL=f"sqlite+aiosqlite:///{db}", PULSE_DATA_DIR=str(tmp_path / "data"),
                         PULSE_REPLAY_SPEED="300")  # 5 market minutes a second: the first run gets well ahead
    port = free_port()

    async def run_demo(name: str, until: str) -> str:
        demo = processes.start(name, "demo", "--port", str(port))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            async def alerts() -> bool:
                return bool((await http.get("/api/v1/volume-alerts")).json()["data"])

            async def fills() -> bool:
                body = (await http.get("/api/v1/paper/fills")).json()
                return bool(body["data"] if isinstance(body, dict) else body)

            await eventually(alerts, deadline_s=120, what="a volume alert", check=processes.check_alive)
            if until == "fills":  # the demo's strategy trades in the seeded admin's paper account
                await eventually(lambda: _printed_admin(demo.log_text()), deadline_s=60, what="the admin's sign-in")
                await sign_in(http, *demo_admin_sign_in(demo.log_text()))
                await eventually(fills, deadline_s=120, what="a paper fill", check=processes.check_alive)
        demo.stop()
        demo.expected_dead = True  # stopped on purpose: the next run's liveness checks must not count it
        assert demo.popen.returncode == 0, demo.log_text()[-3000:]
        return demo.log_text()

    first = await run_demo("demo-1", until="fills")
    stored_by_first = _newest_market_time_ms(db)
    assert stored_by_first > _replay_start_ms(first)  # the first run got ahead of its start

    second = await run_demo("demo-2", until="alerts")
    # The restart's market clock starts after everything the first run stored: nothing lies in its future.
    assert _replay_start_ms(second) >= stored_by_first
    assert "resuming the replay where the stored data ends" in second

    # A log in a file is plain text: no terminal colour codes, no Alembic plugin chatter, but the migrations run.
    for log in (first, second):
        assert not ANSI.search(log), ANSI.search(log)
        assert "setup plugin" not in log and "Context impl" not in log and "Will assume" not in log
    assert "Running upgrade" in first and "Running upgrade" not in second
