"""Backtest jobs over HTTP: validation naming the field, background run to results and report, owners, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from marketpulse.api.app import WEB_DIR
from marketpulse.backtest import Backtest
from marketpulse.backtest.views import router
from marketpulse.clock import FakeClock
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.klines_csv import read_klines_frame
from marketpulse.marketdata.library import CandleLibrary
from marketpulse.marketdata.sample import usdm_perp_1h_path
from marketpulse.runtime import Runtime
from support.accounts import SignedIn, authorize, session_for, sign_in_user

ETH_WEEK = {"strategy": "ema_cross", "symbol": "ETHUSDT", "interval": "1h", "from": "2025-10-08",
            "to": "2025-10-13T00:00:00Z", "params": {"fast": 5, "slow": 20}, "fee_bps": 4, "cash": 5_000}


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    application = FastAPI()
    application.state.runtime = runtime
    application.include_router(router)
    return application


@pytest.fixture
async def me(runtime: Runtime) -> SignedIn:
    return await sign_in_user(runtime)  # a pro user: unlimited backtests a day


@pytest.fixture
async def client(app: FastAPI, me: SignedIn) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 headers=me.headers) as c:
        yield c


async def run_job(client: httpx.AsyncClient, runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/v1/backtests", json=body)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "queued"
    await runtime.services.backtests.wait()
    job = await client.get(f"/api/v1/backtests/{resp.json()['id']}")
    assert job.status_code == 200
    return job.json()


def field_errors(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 422, resp.text
    return {".".join(str(p) for p in e["loc"][1:]): e["msg"] for e in resp.json()["detail"]}


async def test_a_job_runs_the_engine_on_the_sample_and_serves_its_report(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    job = await run_job(client, runtime, ETH_WEEK)
    assert job["status"] == "done", job["error"]
    assert job["progress"] == 1.0 and job["error"] is None
    result = job["result"]
    assert result["data"]["source"] == "sample:usdm_perp_1h" and result["data"]["bars"] == 5 * 24

    # The same numbers the engine gives when called directly on those candles.
    eth = read_klines_frame(usdm_perp_1h_path(), "ETHUSDT", interval="1h")["ETHUSDT"]
    eth = eth.between(1_759_881_600_000, 1_760_313_600_000)
    direct = Backtest(eth, "ema_cross", {"fast": 5, "slow": 20}, cash=5_000, fee_bps=4).run()
    assert result["stats"]["final_equity"] == direct.stats.final_equity
    assert result["stats"]["trades"] == direct.stats.trades > 0
    assert [t["entry_time"] for t in result["trades"]] == [t.entry_time for t in direct.trades]

    report = await client.get(job["report_url"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "ema_cross" in report.text
    listed = (await client.get("/api/v1/backtests")).json()["data"]
    assert [j["id"] for j in listed] == [job["id"]] and "trades" not in listed[0]["result"]


async def test_candles_come_from_the_library_first_resampled_to_the_interval(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    n = 6 * 60 * 24  # six days of minutes
    time = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000 + np.arange(n, dtype=np.int64) * 60_000
    close = 100 + np.cumsum(np.random.default_rng(7).normal(0, 0.2, n))
    frame = CandleFrame(time, close, close + 0.1, close - 0.1, close, np.ones(n), "TESTUSDT", "1m")
    CandleLibrary(runtime.settings.data_dir / "library").append("binance", "TESTUSDT", "1m", frame)
    job = await run_job(client, runtime, {"strategy": "ema_cross", "symbol": "TESTUSDT", "interval": "15m"})
    assert job["status"] == "done", job["error"]
    assert job["request"]["params"] == {"fast": 12, "slow": 26}  # stored resolved: the defaults it ran with
    assert job["result"]["data"] == {"source": "library:binance/TESTUSDT/1m", "bars": n // 15, "interval": "15m",
                                     "from": int(time[0]), "to": int(time[-15])}


async def test_a_csv_under_the_data_directory(client: httpx.AsyncClient, runtime: Runtime) -> None:
    rows = ["open_time,open,high,low,close,volume"]
    for i in range(300):
        price = 100 + (i % 40 if (i // 40) % 2 == 0 else 40 - i % 40)
        rows.append(f"{1_700_000_000_000 - 1_700_000_000_000 % 3_600_000 + i * 3_600_000},{price},{price + 1},"
                    f"{price - 1},{price + 0.5},10")
    path = runtime.settings.data_dir / "uploads" / "TESTUSDT_1h.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(rows) + "\n")
    job = await run_job(client, runtime, {"strategy": "ema_cross", "data": "uploads/TESTUSDT_1h.csv",
                                          "symbol": None, "interval": "1h"})
    assert job["status"] == "done", job["error"]
    assert job["result"]["data"]["source"] == "file:uploads/TESTUSDT_1h.csv" and job["result"]["data"]["bars"] == 300
    assert job["result"]["stats"]["trades"] > 0


async def test_missing_data_fails_the_job_with_a_reason(client: httpx.AsyncClient, runtime: Runtime) -> None:
    job = await run_job(client, runtime, {**ETH_WEEK, "symbol": "NOPEUSDT"})
    assert job["status"] == "failed" and "NOPEUSDT" in job["error"] and job["result"] is None
    assert (await client.get(f"/api/v1/backtests/{job['id']}/report")).status_code == 404


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"strategy": "nope"}, {"strategy"}),
        ({"params": {"fast": 50, "slow": 10}}, {"params"}),
        ({"params": {"speed": 3}}, {"params"}),
        ({"interval": "7m"}, {"interval"}),
        ({"to": "2025-10-01"}, {"to"}),
        ({"from": "yesterday"}, {"from"}),
        ({"fee_bps": -1, "cash": 0, "size": 2}, {"fee_bps", "cash", "size"}),
        ({"data": "candles.csv"}, {"data"}),  # symbol and data both
        ({"symbol": None, "data": "../../etc/passwd"}, {"data"}),  # never outside the data directory
        ({"symbol": None, "data": "../../etc/x.csv"}, {"data"}),
        ({"symbol": None, "data": "marketpulse.db"}, {"data"}),  # nor any file there but candle CSVs
        ({"symbol": None}, {"data"}),  # neither
        ({"colour": "red"}, {"colour"}),
    ],
)
async def test_bad_requests_answer_422_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], fields: set[str]
) -> None:
    body = {**ETH_WEEK, **change}
    assert set(field_errors(await client.post("/api/v1/backtests", json=body))) == fields
    assert (await client.get("/api/v1/backtests")).json()["data"] == []  # nothing stored


async def test_another_owners_job_is_404(client: httpx.AsyncClient, runtime: Runtime) -> None:
    job = await run_job(client, runtime, ETH_WEEK)
    await authorize(client, runtime)  # from now on another user
    assert (await client.get(f"/api/v1/backtests/{job['id']}")).status_code == 404
    assert (await client.get(f"/api/v1/backtests/{job['id']}/report")).status_code == 404
    assert (await client.get("/api/v1/backtests")).json()["data"] == []


async def test_free_plan_runs_three_backtests_a_day(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await authorize(client, runtime, plan="free")
    for _ in range(3):
        assert (await client.post("/api/v1/backtests", json={**ETH_WEEK, "symbol": "NOPEUSDT"})).status_code == 202
    resp = await client.post("/api/v1/backtests", json=ETH_WEEK)
    assert resp.status_code == 429 and resp.json()["detail"]["reason"] == "daily_backtest_limit"
    await runtime.services.backtests.wait()


async def test_the_page_offers_every_strategy(client: httpx.AsyncClient) -> None:
    page = await client.get("/backtests")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in ("ema_cross", "ut_bot", "rsi_reversion"):
        assert f'"name": "{name}"' in page.text
    # Its script is a static file (the Content-Security-Policy allows no inline script), served by the app's /static.
    assert '<script src="/static/backtests.js"></script>' in page.text
    assert 'fetch("/api/v1/backtests"' in (WEB_DIR / "static" / "backtests.js").read_text()


async def test_a_job_cut_off_by_a_restart_reports_failed(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock, me: SignedIn
) -> None:
    from marketpulse.backtest.tables import BacktestJobRow

    async with runtime.sessions() as s:  # left "running" by a process that is gone
        s.add(BacktestJobRow(id="j1", owner_id=me.user_id, status="running", progress=0.3, request=ETH_WEEK,
                             created_at_ms=clock.now_ms(), updated_at_ms=clock.now_ms()))
        await s.commit()
    assert (await client.get("/api/v1/backtests/j1")).json()["status"] == "running"  # maybe still working
    clock.advance(2 * 3_600_000)
    client.headers.update((await session_for(runtime, me.user_id)).headers)  # the old access token expired
    job = (await client.get("/api/v1/backtests/j1")).json()
    assert job["status"] == "failed" and "interrupted" in job["error"]


async def _stored_job(runtime: Runtime, job_id: str, *, owner: str, status: str = "running",
                      created_ms: int, report: Path | None = None) -> None:
    from marketpulse.backtest.tables import BacktestJobRow

    async with runtime.sessions() as s:
        s.add(BacktestJobRow(id=job_id, owner_id=owner, status=status, progress=0.5, request=ETH_WEEK,
                             report_path=str(report) if report else None, created_at_ms=created_ms,
                             updated_at_ms=created_ms))
        await s.commit()


async def test_an_owner_may_have_only_so_many_jobs_unfinished(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock, me: SignedIn
) -> None:
    runtime.settings.backtest_max_queued_per_owner = 2
    await _stored_job(runtime, "a", owner=me.user_id, created_ms=clock.now_ms())
    await _stored_job(runtime, "b", owner=me.user_id, status="queued", created_ms=clock.now_ms())
    resp = await client.post("/api/v1/backtests", json=ETH_WEEK)
    assert resp.status_code == 429, resp.text
    detail = resp.json()["detail"]
    assert detail["reason"] == "backtest_queue_full" and detail["limit"] == 2
    assert "2 backtests queued or running" in detail["message"] and "wait for one to finish" in detail["message"]

    bob = await sign_in_user(runtime)  # another owner's queue is their own
    client.headers.update(bob.headers)
    assert (await run_job(client, runtime, ETH_WEEK))["status"] == "done"
    client.headers.update(me.headers)

    clock.advance(2 * 3_600_000)  # their server died long ago: orphans no longer hold the owner's queue
    client.headers.update((await session_for(runtime, me.user_id)).headers)  # the old access token expired
    assert (await run_job(client, runtime, ETH_WEEK))["status"] == "done"


async def test_finished_jobs_past_the_retention_go_with_their_reports(
    client: httpx.AsyncClient, runtime: Runtime, clock: FakeClock, me: SignedIn
) -> None:
    runtime.settings.backtest_retention_days = 30
    reports = runtime.settings.data_dir / "reports"
    reports.mkdir(parents=True)
    day = 86_400_000
    for job_id, age_days, status in (("old-done", 31, "done"), ("old-failed", 40, "failed"),
                                     ("recent", 29, "done"), ("old-running", 31, "running")):
        report = reports / f"backtest-{job_id}.html"
        report.write_text("<html></html>")
        await _stored_job(runtime, job_id, owner=me.user_id, status=status,
                          created_ms=clock.now_ms() - age_days * day, report=report)

    await run_job(client, runtime, ETH_WEEK)  # retention is applied as jobs are submitted

    listed = {job["id"] for job in (await client.get("/api/v1/backtests?limit=200")).json()["data"]}
    assert {"old-done", "old-failed"}.isdisjoint(listed) and {"recent", "old-running"} <= listed
    assert (await client.get("/api/v1/backtests/old-done")).status_code == 404
    assert not (reports / "backtest-old-done.html").exists() and not (reports / "backtest-old-failed.html").exists()
    assert (reports / "backtest-recent.html").exists()


async def test_reports_stay_within_their_disk_budget_oldest_first(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await run_job(client, runtime, ETH_WEEK)
    reports = runtime.settings.data_dir / "reports"
    size = (reports / f"backtest-{first['id']}.html").stat().st_size
    runtime.settings.backtest_reports_max_mb = 2.5 * size / 1_000_000  # room for two reports, not three
    second = await run_job(client, runtime, {**ETH_WEEK, "params": {"fast": 4, "slow": 20}})
    third = await run_job(client, runtime, {**ETH_WEEK, "params": {"fast": 6, "slow": 20}})

    kept = sorted(p.name for p in reports.glob("backtest-*.html"))
    assert kept == sorted(f"backtest-{j['id']}.html" for j in (second, third))
    assert sum(p.stat().st_size for p in reports.iterdir()) <= runtime.settings.backtest_reports_max_mb * 1e6
    oldest = (await client.get(f"/api/v1/backtests/{first['id']}")).json()
    assert oldest["report_url"] is None and oldest["result"]["stats"]  # the job keeps its results
    gone = await client.get(f"/api/v1/backtests/{first['id']}/report")
    assert gone.status_code == 404 and "disk budget" in gone.json()["detail"]
    assert (await client.get(f"/api/v1/backtests/{third['id']}/report")).status_code == 200
