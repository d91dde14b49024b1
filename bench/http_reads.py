"""HTTP reads under `wrk`: our hot reads as a signed-in elite user (rate limits off) beside a like-for-like trivial
FastAPI app, in the same run, alternating, so the ratio survives a loaded machine.

    .venv/bin/python -m bench.http_reads [--duration 10] [--connections 64] [--rounds 2] [--pg-dsn postgresql://…]

Ours: the real app (`roles.api_server`: the uvicorn settings, access log, metrics and rate-limit middlewares,
authentication, the plan's view, `gc` settled after start-up) in a process of its own, on PostgreSQL when
`--pg-dsn` (or PULSE_TEST_PG_DSN) reaches a server, else SQLite; 120 USDT perpetuals in the live table, a few of
them changing every second (so the encoded views are rebuilt as in the demo), and 500 stored volume alerts.
Baseline: a trivial FastAPI app on the same uvicorn settings (same `uvicorn.Config` arguments, access log on) that
answers the same bodies through a response model: 120 market rows, 50 alerts, `{"status": "ok"}`.
Each figure is `wrk -t1 -cN -dDs --latency`; the table gives requests/s, the ratio to its baseline and our p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SYMBOLS = 120
ALERTS = 500
T0 = 1_760_126_400_000
ENDPOINTS = (  # (label, our path, baseline path)
    ("GET /health/live", "/health/live", "/health/live"),
    ("GET /api/v1/market/data (elite, 120 rows)", "/api/v1/market/data", "/rows"),
    ("GET /api/v1/volume-alerts?limit=50 (elite)", "/api/v1/volume-alerts?limit=50", "/alerts"),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def market_rows(now_ms: int, tick: int = 0) -> list[dict[str, Any]]:
    return [{"symbol": f"C{i:03d}USDT", "time": now_ms, "price": 100.0 + i + tick * 0.01, "change_pct_24h": 1.25,
             "quote_volume_24h": 1e9 / (i + 1), "funding_rate": 0.0001, "open_interest_usd": 5e8 / (i + 1),
             "price_precision": 2} for i in range(SYMBOLS)]


def alert_wire(i: int) -> dict[str, Any]:
    return {"symbol": f"C{i % SYMBOLS:03d}USDT", "asset": f"C{i % SYMBOLS:03d}", "currentVolume": 1.5e7,
            "previousVolume": 3e6, "volumeRatio": 5.0, "price": 101.5, "fundingRate": 0.0001,
            "candleDirection": "bullish", "alertType": "SPIKE",
            "message": f"C{i % SYMBOLS:03d}USDT volume spike: 5.0x the previous hour ($15.0M vs $3.0M)",
            "timestamp": T0 + i * 60_000, "hourTimestamp": T0 + i * 60_000 - (T0 + i * 60_000) % 3_600_000,
            "isUpdate": False, "id": str(uuid.UUID(int=i))}


def uvicorn_config(app: Any, port: int) -> Any:
    """The uvicorn settings of `roles.api_server`, for the baseline."""
    import uvicorn

    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", lifespan="on",
                          timeout_graceful_shutdown=1)


# --- the baseline (a process of its own) -----------------------------------------------------------------------

def serve_baseline(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    class Row(BaseModel):
        symbol: str
        time: int
        price: float
        changePct24h: float
        quoteVolume24h: float
        fundingRate: float | None
        openInterestUsd: float | None
        pricePrecision: int | None

    class Rows(BaseModel):
        data: list[Row]
        count: int
        plan: str
        asOf: int | None

    class Alerts(BaseModel):
        data: list[dict[str, Any]]
        count: int
        plan: str

    app = FastAPI()
    rows = [{"symbol": r["symbol"], "time": r["time"], "price": r["price"], "changePct24h": r["change_pct_24h"],
             "quoteVolume24h": r["quote_volume_24h"], "fundingRate": r["funding_rate"],
             "openInterestUsd": r["open_interest_usd"], "pricePrecision": r["price_precision"]}
            for r in market_rows(T0)]
    alerts = [alert_wire(i) for i in range(50)]

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/rows", response_model=Rows)
    async def table() -> dict[str, Any]:
        return {"data": rows, "count": len(rows), "plan": "elite", "asOf": T0}

    @app.get("/alerts", response_model=Alerts)
    async def listed() -> dict[str, Any]:
        return {"data": alerts, "count": len(alerts), "plan": "elite"}

    uvicorn.Server(uvicorn_config(app, port)).run()


# --- ours (a process of its own) -------------------------------------------------------------------------------

def serve_ours(port: int, database_url: str, token_file: str) -> None:
    from marketpulse.settings import Settings
    from marketpulse.storage.migrate import upgrade

    settings = Settings(database_url=database_url, rate_limits="off")
    upgrade(database_url)
    asyncio.run(_serve_ours(settings, port, Path(token_file)))


async def _serve_ours(settings: Any, port: int, token_file: Path) -> None:
    from marketpulse.bus import topics
    from marketpulse.detection.models import VolumeAlert
    from marketpulse.detection.service import VolumeAlertStore
    from marketpulse.roles import api_server
    from marketpulse.runtime import Runtime

    runtime = Runtime.open(settings)
    accounts = runtime.services.accounts
    user = await accounts.create_user(f"bench-{uuid.uuid4().hex[:8]}@example.com", None, plan="elite",
                                      verified=True)
    token = (await accounts.start_session(user)).access_token
    await VolumeAlertStore(runtime.sessions).save([
        VolumeAlert(**{k: v for k, v in _snake(alert_wire(i)).items() if k != "id"}) for i in range(ALERTS)])
    server = api_server(runtime, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn's Server has a flag, no event)
        await asyncio.sleep(0.05)
    now = int(time.time() * 1000)
    await runtime.bus.publish(topics.MARKET_TICKERS, {"time": now, "rows": market_rows(now)})
    await asyncio.to_thread(token_file.write_text, token)
    tick = 0
    while not serving.done():  # a few symbols change every second, as the demo's replay does
        await asyncio.sleep(1.0)
        tick += 1
        now = int(time.time() * 1000)
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": now, "rows": market_rows(now, tick)[:5]})


def _snake(wire: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in wire.items()}


# --- the run ---------------------------------------------------------------------------------------------------

def wrk(url: str, duration: int, connections: int, headers: dict[str, str]) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return {"rate": rate, "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
            "errors": float(non2xx.group(1)) if non2xx else 0.0,
            "timeouts": float(timeouts.group(1)) if timeouts else 0.0}


def wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not listen")


async def _pg_url(dsn: str | None) -> tuple[str, str] | None:
    if not dsn:
        return None
    try:
        from bench.delivery import pg_database

        return await pg_database(dsn)
    except Exception as exc:  # no server: SQLite
        print(f"(PostgreSQL unavailable: {type(exc).__name__}; using SQLite)", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="mp-http-"))
    pg = asyncio.run(_pg_url(args.pg_dsn))
    database_url = pg[0] if pg else f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    token_file = tmp / "token"
    ours_port, base_port = free_port(), free_port()
    env = {**os.environ, "PULSE_RATE_LIMITS": "off"}
    quiet = subprocess.DEVNULL  # both servers' access logs go to the same place
    ours = subprocess.Popen([sys.executable, "-m", "bench.http_reads", "--serve-ours", str(ours_port),
                             database_url, str(token_file)], env=env, stdout=quiet, stderr=quiet)
    base = subprocess.Popen([sys.executable, "-m", "bench.http_reads", "--serve-baseline", str(base_port)],
                            stdout=quiet, stderr=quiet)
    try:
        wait_listening(base_port, base)
        wait_listening(ours_port, ours)
        deadline = time.monotonic() + 60
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token_file.read_text()}"}
        results: dict[str, dict[str, list[dict[str, float]]]] = {}
        for label, our_path, base_path in ENDPOINTS:
            got = results.setdefault(label, {"ours": [], "base": []})
            wrk(f"http://127.0.0.1:{ours_port}{our_path}", 2, args.connections, auth)  # warm-up
            for _ in range(args.rounds):  # alternate, so both see the same load on the machine
                got["base"].append(wrk(f"http://127.0.0.1:{base_port}{base_path}", args.duration,
                                       args.connections, {}))
                got["ours"].append(wrk(f"http://127.0.0.1:{ours_port}{our_path}", args.duration,
                                       args.connections, auth))
        return table(results, args)
    finally:
        for proc in (ours, base):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if pg:
            from bench.delivery import drop_pg

            asyncio.run(drop_pg(args.pg_dsn, pg[1]))
        shutil.rmtree(tmp, ignore_errors=True)


def table(results: dict[str, dict[str, list[dict[str, float]]]], args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    lines = [f"wrk -t1 -c{args.connections} -d{args.duration}s × {args.rounds} rounds, alternating; load average "
             f"{load:.1f} on {os.cpu_count()} cores", "",
             "| endpoint | ours req/s | baseline req/s | ratio | goal | our p99 ms | baseline p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    goals = {ENDPOINTS[1][0]: "≥ 0.8", ENDPOINTS[2][0]: "≥ 0.5"}
    for label, got in results.items():
        ours = sum(r["rate"] for r in got["ours"]) / len(got["ours"])
        base = sum(r["rate"] for r in got["base"]) / len(got["base"])
        p99 = max(r["p99_ms"] for r in got["ours"])
        base_p99 = max(r["p99_ms"] for r in got["base"])
        errors = sum(r["errors"] + r["timeouts"] for r in got["ours"])
        lines.append(f"| {label} | {ours:,.0f} | {base:,.0f} | {ours / base:.2f} | {goals.get(label, '—')} | "
                     f"{p99:.0f} | {base_p99:.0f} | {errors:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg-dsn", default=os.environ.get("PULSE_TEST_PG_DSN",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--serve-ours", nargs=3, metavar=("PORT", "DATABASE_URL", "TOKEN_FILE"))
    parser.add_argument("--serve-baseline", metavar="PORT")
    args = parser.parse_args()
    if args.serve_ours:
        serve_ours(int(args.serve_ours[0]), args.serve_ours[1], args.serve_ours[2])
        return 0
    if args.serve_baseline:
        serve_baseline(int(args.serve_baseline))
        return 0
    print(run(args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
