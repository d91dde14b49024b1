"""Backtest jobs over HTTP, and the `/backtests` page that runs one and shows its report.

    POST /api/v1/backtests             {strategy, symbol | data, interval, from, to, params, fee_bps, cash, size,
                                        long_only} → 202 {id, status: "queued", …}; 422 naming the bad field
    GET  /api/v1/backtests             the owner's recent jobs
    GET  /api/v1/backtests/sources     what a backtest can run on: bundled samples, the candle library's series
    GET  /api/v1/backtests/{id}        status, progress 0..1, result {stats, trades, data} or error; 404 if not theirs
    GET  /api/v1/backtests/{id}/report the HTML report (404 until done)
    GET  /backtests                    the page
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from marketpulse.api.errors import error_responses
from marketpulse.api.pages import Page, page
from marketpulse.backtest.candles import safe_data_path
from marketpulse.backtest.schemas import BacktestRequest, FieldError, job_json
from marketpulse.backtest.service import BacktestJobs, DailyLimitReached, QueueFull
from marketpulse.backtest.sources import DataSource, data_sources
from marketpulse.marketdata.intervals import Interval
from marketpulse.strategies import REGISTRY
from marketpulse.trading.owners import OWNER_RESPONSES, current_owner, owner_plan

router = APIRouter()
# The page's templates extend the site's base.html (one header and theme): both directories are searched.
templates = Jinja2Templates(directory=[Path(__file__).parent / "templates",
                                       Path(__file__).parents[1] / "web" / "templates"])
# What the page's form starts with: 9 trades on the bundled BTCUSDT minutes at 15m (tests/backtest check it).
DEFAULTS = {"source": "sample:btcusdt_spot_1m", "symbol": "BTCUSDT", "interval": "15m", "strategy": "ema_cross"}

INTERVALS: tuple[str, ...] = tuple(Interval)  # the one set the API accepts


def _jobs(request: Request) -> BacktestJobs:
    """The process's job runner, built once with the runtime's services (see `marketpulse.services`)."""
    return request.app.state.runtime.services.backtests


@router.post("/api/v1/backtests", status_code=status.HTTP_202_ACCEPTED, tags=["backtests"],
             responses=OWNER_RESPONSES | error_responses({
                 429: "The owner's daily backtest limit is reached, or they have "
                      "PULSE_BACKTEST_MAX_QUEUED_PER_OWNER jobs unfinished"}))
async def start_backtest(body: BacktestRequest, request: Request, owner: str = Depends(current_owner),
                         jobs: BacktestJobs = Depends(_jobs)) -> Any:
    if body.data is not None:
        try:
            await asyncio.to_thread(safe_data_path, jobs.settings.data_dir, body.data)
        except FieldError as exc:
            raise RequestValidationError(
                [{"loc": ("body", exc.field), "msg": str(exc), "type": "value_error", "input": body.data}]
            ) from None
    try:
        row = await jobs.submit(owner, body, plan=owner_plan(request))
    except DailyLimitReached as exc:
        detail = {"reason": "daily_backtest_limit", "message": str(exc), "limit": exc.limit}
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=detail) from None
    except QueueFull as exc:
        detail = {"reason": "backtest_queue_full", "message": str(exc), "limit": exc.limit}
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=detail) from None
    return job_json(row)


@router.get("/api/v1/backtests", tags=["backtests"], responses=OWNER_RESPONSES, response_model=Page[dict[str, Any]])
async def list_backtests(owner: str = Depends(current_owner), jobs: BacktestJobs = Depends(_jobs),
                         limit: int = Query(20, ge=1, le=200)) -> Any:
    return page([_summary(r) for r in await jobs.recent(owner, limit)])


@router.get("/api/v1/backtests/sources", tags=["backtests"], response_model=Page[DataSource],
            responses=OWNER_RESPONSES)
async def backtest_sources(owner: str = Depends(current_owner), jobs: BacktestJobs = Depends(_jobs)) -> Any:
    """The bundled samples and the candle library's series, each with the symbols and intervals it gives."""
    return page(await asyncio.to_thread(data_sources, jobs.settings.data_dir / "library"))


@router.get("/api/v1/backtests/{job_id}", tags=["backtests"],
            responses=OWNER_RESPONSES | error_responses({404: "No such backtest of this owner"}))
async def get_backtest(job_id: str, owner: str = Depends(current_owner), jobs: BacktestJobs = Depends(_jobs)) -> Any:
    row = await jobs.get(owner, job_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no backtest {job_id}")
    return job_json(row)


@router.get("/api/v1/backtests/{job_id}/report", response_class=FileResponse, tags=["backtests"],
            responses=OWNER_RESPONSES | error_responses({404: "No such backtest, or its report isn't written yet"}))
async def get_report(job_id: str, owner: str = Depends(current_owner),
                     jobs: BacktestJobs = Depends(_jobs)) -> FileResponse:
    row = await jobs.get(owner, job_id)
    if row is not None and row.status == "done" and row.report_path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"the report of backtest {job_id} was removed to keep "
                            "reports within their disk budget; its stats and trades remain")
    if row is None or row.report_path is None or not await asyncio.to_thread(Path(row.report_path).is_file):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no report for backtest {job_id} (yet)")
    return FileResponse(row.report_path, media_type="text/html")


@router.get("/backtests", response_class=HTMLResponse, include_in_schema=False)
async def backtests_page(request: Request) -> HTMLResponse:
    strategies = [
        {"name": name, "description": cls.description,
         "params": [{"name": p.name, "default": p.default, "kind": p.kind.__name__, "help": p.help,
                     "low": p.low, "high": p.high, "choices": list(p.choices) if p.choices else None}
                    for p in cls.params]}
        for name, cls in sorted(REGISTRY.items())
    ]
    sources = await asyncio.to_thread(data_sources, request.app.state.runtime.settings.data_dir / "library")
    bootstrap = {"strategies": strategies, "intervals": INTERVALS, "sources": [s.model_dump() for s in sources],
                 "defaults": DEFAULTS}
    return templates.TemplateResponse(request, "backtests.html", {"bootstrap": bootstrap, "title": "Backtests"})


def _summary(row: Any) -> dict[str, Any]:
    out = job_json(row)
    if row.result is not None:
        out["result"] = {"stats": row.result.get("stats"), "data": row.result.get("data")}  # trades: fetch the job
    return out
