"""Backtest jobs: started in the background, polled for progress and results, always scoped by owner.

A job moves queued → running → done | failed. The heavy steps (reading candles, the backtest, the HTML report)
run on a small thread pool (`backtest_workers`) owned by `BacktestJobs` and shut down with it, so the event loop
stays free and progress is written between steps. The engine's compiled loop holds the GIL only for the backtest
itself (~0.05 s per million bars); signals are numpy. The engine is imported only when a job runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.plans import plan_named
from marketpulse.backtest.candles import LoadedCandles, NoCandles, job_candles
from marketpulse.backtest.schemas import BacktestRequest, FieldError
from marketpulse.backtest.tables import BacktestJobRow
from marketpulse.clock import Clock
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import DAY_MS
from marketpulse.metrics import JOB_DURATION
from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

MAX_TRADES_STORED = 10_000  # a result row stays a reasonable size; the report and stats still cover every trade
# A queued/running job no process has touched for this long was cut off by a restart: report it as failed.
# (Each step writes progress; one step — a huge backtest — can run long, hence the generous margin.)
ORPHANED_AFTER_MS = 3_600_000


def run_backtest(req: BacktestRequest, candles: CandleFrame) -> Any:
    """The engine's `Backtest(...).run()` — the same call the CLI makes."""
    from marketpulse.backtest.engine import Backtest

    return Backtest(candles, req.strategy, req.params, cash=req.cash, fee_bps=req.fee_bps, size=req.size,
                    long_only=req.long_only).run()


def write_html_report(result: Any, path: Path, settings: Settings | None = None) -> Path:
    """The report, its chart library read from the node_modules the pages' /vendor files come from."""
    from marketpulse.backtest.report import write_report
    from marketpulse.web.assets import node_modules_dir

    return write_report(result, path, node_modules_dir(settings) if settings is not None else None)


def result_json(result: Any, loaded: LoadedCandles) -> dict[str, Any]:
    """The stored result: stats and trades (each with its exit in words: `exit_kind`, `exit_label`), and what the
    page draws (`chart`, `monthly`, `summary`: see `backtest.presentation`)."""
    from marketpulse.backtest.presentation import present

    body: dict[str, Any] = result.as_json()
    shown = present(result)
    trades = body["trades"]
    for trade, exit_ in zip(trades, shown.pop("exits"), strict=True):
        trade["exit_kind"], trade["exit_label"] = exit_["kind"], exit_["label"]
    body.update(shown)
    body["trades_truncated"] = len(trades) > MAX_TRADES_STORED
    body["trades"] = trades[:MAX_TRADES_STORED]
    frame = loaded.frame
    body["data"] = {"source": loaded.source, "bars": len(frame), "interval": frame.interval,
                    "from": int(frame.time[0]), "to": int(frame.time[-1])}
    return body


class DailyLimitReached(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the free plan runs {limit} backtests a day")
        self.limit = limit


class QueueFull(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"you have {limit} backtests queued or running, the most one owner may have at once: "
                         "wait for one to finish, then start the next")
        self.limit = limit


class BacktestJobs:
    """Starts jobs in the background and answers for them, always scoped by owner."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings) -> None:
        self.sessions, self.clock, self.settings = sessions, clock, settings
        self._pool = ThreadPoolExecutor(settings.backtest_workers, thread_name_prefix="backtest")
        self._tasks: set[asyncio.Task[None]] = set()
        self._running_here: set[str] = set()

    async def submit(self, owner_id: str, req: BacktestRequest, plan: str) -> BacktestJobRow:
        """Queue a job for `owner_id`, whose plan as stored now (the plan table's `backtests_per_day`) sets the
        daily quota: a plan change applies to the next job."""
        now = self.clock.now_ms()
        async with self.sessions() as s:
            await self._prune_expired(s, now)
            # The day's quota first: it won't clear by waiting.
            await self._check_daily_limit(s, owner_id, now, plan)
            await self._check_queue(s, owner_id, now)
            row = BacktestJobRow(
                id=str(uuid.uuid4()), owner_id=owner_id, status="queued", progress=0.0, request=req.as_json(),
                created_at_ms=now, updated_at_ms=now,
            )
            s.add(row)
            await s.commit()
        self._running_here.add(row.id)
        task = asyncio.create_task(self._run(row.id, req), name=f"backtest:{row.id}")
        self._tasks.add(task)  # keep a reference: the loop only holds weak ones
        task.add_done_callback(self._tasks.discard)
        return row

    async def get(self, owner_id: str, job_id: str) -> BacktestJobRow | None:
        async with self.sessions() as s:
            stmt = select(BacktestJobRow).where(BacktestJobRow.owner_id == owner_id, BacktestJobRow.id == job_id)
            row = (await s.execute(stmt)).scalar_one_or_none()
            if row is not None and self._orphaned(row):
                row.status, row.error = "failed", "interrupted: the server running it stopped; start it again"
                row.finished_at_ms = row.updated_at_ms = self.clock.now_ms()
                await s.commit()
            return row

    def _orphaned(self, row: BacktestJobRow) -> bool:
        return (row.status in ("queued", "running") and row.id not in self._running_here
                and self.clock.now_ms() - row.updated_at_ms > ORPHANED_AFTER_MS)

    async def recent(self, owner_id: str, limit: int = 20) -> list[BacktestJobRow]:
        stmt = (select(BacktestJobRow).where(BacktestJobRow.owner_id == owner_id)
                .order_by(BacktestJobRow.created_at_ms.desc()).limit(limit))
        async with self.sessions() as s:
            return list((await s.execute(stmt)).scalars())

    async def wait(self) -> None:
        """Until every job started here has finished (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Shutdown: jobs still running here are stored as interrupted (their owner can start them again), the
        waiting steps are dropped and the pool's threads are released without waiting for a step in progress."""
        interrupted = set(self._running_here)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for job_id in interrupted:
            await self._update(job_id, status="failed", error="interrupted: the server stopped; start it again",
                               finished_at_ms=self.clock.now_ms())

    async def _check_queue(self, s: AsyncSession, owner_id: str, now: int) -> None:
        """One owner can't fill the pool (and the disk) for everyone: a bounded number of unfinished jobs each,
        counted across every API process (an orphan, whose server died, no longer counts)."""
        limit = self.settings.backtest_max_queued_per_owner
        stmt = select(func.count()).select_from(BacktestJobRow).where(
            BacktestJobRow.owner_id == owner_id, BacktestJobRow.status.in_(("queued", "running")),
            BacktestJobRow.updated_at_ms > now - ORPHANED_AFTER_MS,
        )
        if (await s.execute(stmt)).scalar_one() >= limit:
            raise QueueFull(limit)

    async def _prune_expired(self, s: AsyncSession, now: int) -> None:
        """Retention: finished jobs older than `backtest_retention_days` go, rows and report files (checked on each
        submit, so the store shrinks as it is used, without a scheduler)."""
        cutoff = now - self.settings.backtest_retention_days * DAY_MS
        expired = (await s.execute(
            select(BacktestJobRow.id, BacktestJobRow.report_path).where(
                BacktestJobRow.created_at_ms < cutoff, BacktestJobRow.status.in_(("done", "failed")))
        )).all()
        if not expired:
            return
        await s.execute(delete(BacktestJobRow).where(BacktestJobRow.id.in_([job_id for job_id, _ in expired])))
        await s.commit()
        reports = [Path(p) for _, p in expired if p]
        await asyncio.get_running_loop().run_in_executor(self._pool, _remove_files, reports)
        log.info("expired backtest jobs deleted", jobs=len(expired), reports=len(reports))

    async def _keep_reports_within_budget(self, newest: Path) -> None:
        """The disk budget: remove the oldest reports until the folder fits, never the one just written; their jobs
        keep their stats and trades, and say the report was removed."""
        budget = int(self.settings.backtest_reports_max_mb * 1_000_000)
        removed = await asyncio.get_running_loop().run_in_executor(
            self._pool, trim_reports, newest.parent, budget, newest)
        if not removed:
            return
        async with self.sessions() as s:
            await s.execute(update(BacktestJobRow).where(BacktestJobRow.report_path.in_([str(p) for p in removed]))
                            .values(report_path=None))
            await s.commit()
        log.info("backtest reports removed to stay within the disk budget", removed=len(removed), budget=budget)

    async def _check_daily_limit(self, s: AsyncSession, owner_id: str, now: int, plan: str) -> None:
        limit = plan_named(plan).backtests_per_day
        if limit is None:
            return
        day_start = now - now % DAY_MS
        stmt = select(func.count()).select_from(BacktestJobRow).where(
            BacktestJobRow.owner_id == owner_id, BacktestJobRow.created_at_ms >= day_start
        )
        if (await s.execute(stmt)).scalar_one() >= limit:
            raise DailyLimitReached(limit)

    async def _run(self, job_id: str, req: BacktestRequest) -> None:
        loop = asyncio.get_running_loop()
        started, status = time.perf_counter(), "failed"
        try:
            await self._update(job_id, status="running", progress=0.05, started_at_ms=self.clock.now_ms())
            loaded = await loop.run_in_executor(self._pool, job_candles, req, self.settings.data_dir)
            await self._update(job_id, progress=0.3)
            result = await loop.run_in_executor(self._pool, run_backtest, req, loaded.frame)
            await self._update(job_id, progress=0.8)
            path = self.settings.data_dir / "reports" / f"backtest-{job_id}.html"
            await loop.run_in_executor(self._pool, write_html_report, result, path, self.settings)
            await self._update(job_id, status="done", progress=1.0, result=result_json(result, loaded),
                               report_path=str(path), finished_at_ms=self.clock.now_ms())
            await self._keep_reports_within_budget(path)
            status = "done"
            log.info("backtest job done", job=job_id, trades=len(result.trades))
        except Exception as exc:  # a job's failure is its result: stored for the owner, never lost
            log.warning("backtest job failed", job=job_id, error=str(exc))
            await self._update(job_id, status="failed", error=_reason(exc), finished_at_ms=self.clock.now_ms())
        finally:
            JOB_DURATION.labels(status=status).observe(time.perf_counter() - started)
            self._running_here.discard(job_id)

    async def _update(self, job_id: str, **values: Any) -> None:
        async with self.sessions() as s:
            row = await s.get(BacktestJobRow, job_id)
            if row is None:
                return
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at_ms = self.clock.now_ms()
            await s.commit()


def trim_reports(folder: Path, budget_bytes: int, keep: Path) -> list[Path]:
    """Delete the oldest `backtest-*.html` in `folder` until the rest fit in `budget_bytes`; never `keep`."""
    reports = sorted(((p.stat().st_mtime, p) for p in folder.glob("backtest-*.html") if p != keep),
                     key=lambda item: item[0])
    total = sum(p.stat().st_size for _, p in reports) + (keep.stat().st_size if keep.is_file() else 0)
    removed: list[Path] = []
    for _, path in reports:
        if total <= budget_bytes:
            break
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _reason(exc: Exception) -> str:
    if isinstance(exc, NoCandles | FieldError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
