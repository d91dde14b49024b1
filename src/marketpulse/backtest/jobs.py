"""Backtest jobs: one row per POST /api/v1/backtests, run in the background, polled for progress and results.

A job moves queued → running → done | failed. The heavy steps (reading candles, the backtest, the HTML report)
run on a small thread pool (`backtest_workers`), one `asyncio.to_thread`-style hop each, so the event loop stays
free and progress is written between steps. The engine's compiled loop holds the GIL only for the backtest itself
(~0.05 s per million bars); signals are numpy. Candles come from the Parquet library (`data_dir/library`, resampled
from a finer interval when needed), else from the repository's bundled sample; or from a CSV file under `data_dir`.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import JSON, BigInteger, Float, Index, String, Text, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from marketpulse.clock import Clock
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.models import normalize_symbol
from marketpulse.settings import Settings
from marketpulse.storage.database import Base

log = structlog.get_logger(__name__)

MAX_TRADES_STORED = 10_000  # a result row stays a reasonable size; the report and stats still cover every trade
FREE_PLAN_DAILY_BACKTESTS = 3  # the seed's free tier
DAY_MS = 86_400_000
# A queued/running job no process has touched for this long was cut off by a restart: report it as failed.
# (Each step writes progress; one step — a huge backtest — can run long, hence the generous margin.)
ORPHANED_AFTER_MS = 3_600_000


class BacktestJobRow(Base):
    __tablename__ = "backtest_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))  # queued | running | done | failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # {"stats": …, "trades": […]}
    report_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    started_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_backtest_jobs_owner_created", "owner_id", "created_at_ms"),)


# --- the request ---------------------------------------------------------------------------------------------
class BacktestRequest(BaseModel):
    """POST /api/v1/backtests. Invalid fields answer 422 naming the field (params: naming the parameter too)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    strategy: str = Field(examples=["ema_cross"])
    symbol: str | None = Field(None, max_length=64, examples=["BTCUSDT"])
    data: str | None = Field(
        None, validate_default=True, description="A candle CSV under the server's data_dir, instead of symbol"
    )
    exchange: str = Field("binance", max_length=32)
    interval: str = Field("1h", examples=["1h"])
    start: int | None = Field(None, alias="from", description="ISO date/time (UTC) or epoch ms; inclusive")
    end: int | None = Field(None, alias="to", description="ISO date/time (UTC) or epoch ms; exclusive")
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    fee_bps: float = Field(0.0, ge=0, le=1_000, allow_inf_nan=False)
    cash: float = Field(10_000.0, gt=0, le=1e12, allow_inf_nan=False)
    size: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="Fraction of equity per entry")
    long_only: bool = False

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        from marketpulse.strategies import get_strategy

        get_strategy(v)  # ValueError listing the known names
        return v

    @field_validator("symbol")
    @classmethod
    def _normalize(cls, v: str | None) -> str | None:
        return normalize_symbol(v) if v else None

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, v: str) -> str:
        from marketpulse.marketdata.library import interval_ms

        interval_ms(v)
        return v

    @field_validator("data")
    @classmethod
    def _one_source(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "symbol" in info.data and (info.data["symbol"] is None) == (v is None):
            raise ValueError("give either symbol (the candle library) or data (a CSV file), not both")
        return v

    @field_validator("start", "end", mode="before")
    @classmethod
    def _to_ms(cls, v: Any) -> int | None:
        return None if v is None or v == "" else to_epoch_ms(v)

    @field_validator("end")
    @classmethod
    def _after_start(cls, v: int | None, info: ValidationInfo) -> int | None:
        start = info.data.get("start")
        if v is not None and start is not None and v <= start:
            raise ValueError("must be after from")
        return v

    @field_validator("params")
    @classmethod
    def _valid_params(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from marketpulse.strategies import get_strategy

        name = info.data.get("strategy")
        if name is None:
            return v  # the strategy itself is invalid: that error is enough
        return get_strategy(name).resolve_params(v)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class FieldError(ValueError):
    """A request field the server can't honour (checked outside the model): the views answer 422 naming it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def to_epoch_ms(v: Any) -> int:
    """Epoch ms from an int (ms), an ISO date ('2024-01-01', UTC midnight) or an ISO date-time (naive = UTC)."""
    if isinstance(v, bool):
        raise ValueError("expected a date, a date-time or epoch milliseconds")
    if isinstance(v, int | float):
        return int(v)
    if isinstance(v, str):
        text = v.strip()
        if text.isdigit():
            return int(text)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{v!r} is not an ISO date/date-time or epoch milliseconds") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    if isinstance(v, datetime | date):
        return to_epoch_ms(v.isoformat())
    raise ValueError("expected a date, a date-time or epoch milliseconds")


# --- candles -------------------------------------------------------------------------------------------------
class NoCandles(LookupError):
    pass


@dataclass(frozen=True)
class LoadedCandles:
    frame: CandleFrame
    source: str  # where they came from, reported with the result


def load_candles(req: BacktestRequest, data_dir: Path) -> LoadedCandles:
    """The request's candles at its interval, in [from, to); NoCandles explains what is missing."""
    loaded = _from_file(req, data_dir) if req.data is not None else _from_library_or_sample(req, data_dir)
    frame = loaded.frame.between(req.start, req.end)
    frame = _at_interval(frame, req.interval)
    if len(frame) < 2:
        raise NoCandles(f"{loaded.source}: fewer than 2 {req.interval} candles in the requested range")
    return LoadedCandles(frame, loaded.source)


def _at_interval(frame: CandleFrame, interval: str) -> CandleFrame:
    from marketpulse.marketdata.library import interval_ms, resample

    if frame.interval == interval:
        return frame
    if interval_ms(interval) < interval_ms(frame.interval):
        raise NoCandles(f"the candles are {frame.interval}: a finer {interval} can't be made from them")
    return resample(frame, interval)


def _from_file(req: BacktestRequest, data_dir: Path) -> LoadedCandles:
    from marketpulse.marketdata.klines_csv import read_klines_frame

    assert req.data is not None
    path = safe_data_path(data_dir, req.data)
    frames = read_klines_frame(path, req.symbol)
    if len(frames) != 1:
        raise NoCandles(f"{req.data} holds {len(frames)} symbols; name one with symbol")
    return LoadedCandles(next(iter(frames.values())), f"file:{req.data}")


CSV_SUFFIXES = (".csv", ".csv.gz")


def safe_data_path(data_dir: Path, name: str) -> Path:
    """A candle CSV inside `data_dir`: no absolute paths, no escaping with .., nothing but .csv/.csv.gz — the API
    must never read (and echo parse errors from) other files there, such as the SQLite database."""
    root = data_dir.resolve()
    path = (root / name).resolve()
    if not path.name.lower().endswith(CSV_SUFFIXES):
        raise FieldError("data", "must name a .csv or .csv.gz file")
    if not path.is_relative_to(root) or not path.is_file():
        raise FieldError("data", f"no file {name!r} under the server's data directory")
    return path


def _from_library_or_sample(req: BacktestRequest, data_dir: Path) -> LoadedCandles:
    from marketpulse.marketdata.library import CandleLibrary

    assert req.symbol is not None
    library = CandleLibrary(data_dir / "library")
    for interval in dict.fromkeys((req.interval, "1m")):
        frame = library.read(req.exchange, req.symbol, interval, req.start, req.end)
        if len(frame):
            return LoadedCandles(frame, f"library:{req.exchange}/{req.symbol}/{interval}")
    return _from_sample(req)


def _from_sample(req: BacktestRequest) -> LoadedCandles:
    from marketpulse.marketdata import sample
    from marketpulse.marketdata.klines_csv import read_klines_frame
    from marketpulse.marketdata.library import interval_ms

    if req.symbol == "BTCUSDT" and interval_ms(req.interval) < 3_600_000:
        path, name = sample.btcusdt_spot_1m_path(), "sample:btcusdt_spot_1m"
        frames = read_klines_frame(path, "BTCUSDT", interval="1m")
    else:
        path, name = sample.usdm_perp_1h_path(), "sample:usdm_perp_1h"
        frames = read_klines_frame(path, req.symbol, interval="1h")
    if req.symbol not in frames:
        raise NoCandles(
            f"no {req.symbol} candles: the library ({req.exchange}) has none and the bundled sample doesn't hold it "
            "(import some: pulse data import FILE)"
        )
    return LoadedCandles(frames[req.symbol], name)


# --- running -------------------------------------------------------------------------------------------------
def run_backtest(req: BacktestRequest, candles: CandleFrame) -> Any:
    """The engine's `Backtest(...).run()` — the same call the CLI makes."""
    from marketpulse.backtest.engine import Backtest

    return Backtest(candles, req.strategy, req.params, cash=req.cash, fee_bps=req.fee_bps, size=req.size,
                    long_only=req.long_only).run()


def write_html_report(result: Any, path: Path) -> Path:
    from marketpulse.backtest.report import write_report

    return write_report(result, path)


def result_json(result: Any, loaded: LoadedCandles) -> dict[str, Any]:
    body: dict[str, Any] = result.as_json()
    trades = body["trades"]
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


class BacktestJobs:
    """Starts jobs in the background and answers for them, always scoped by owner."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings) -> None:
        self.sessions, self.clock, self.settings = sessions, clock, settings
        self._pool = ThreadPoolExecutor(settings.backtest_workers, thread_name_prefix="backtest")
        self._tasks: set[asyncio.Task[None]] = set()
        self._running_here: set[str] = set()

    async def submit(self, owner_id: str, req: BacktestRequest) -> BacktestJobRow:
        now = self.clock.now_ms()
        async with self.sessions() as s:
            await self._check_daily_limit(s, owner_id, now)
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
        """Until every job started here has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _check_daily_limit(self, s: AsyncSession, owner_id: str, now: int) -> None:
        # TODO(accounts): the owner's own plan; until accounts exist every owner has the configured plan.
        if self.settings.paper_plan != "free":
            return
        day_start = now - now % DAY_MS
        stmt = select(func.count()).select_from(BacktestJobRow).where(
            BacktestJobRow.owner_id == owner_id, BacktestJobRow.created_at_ms >= day_start
        )
        if (await s.execute(stmt)).scalar_one() >= FREE_PLAN_DAILY_BACKTESTS:
            raise DailyLimitReached(FREE_PLAN_DAILY_BACKTESTS)

    async def _run(self, job_id: str, req: BacktestRequest) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._update(job_id, status="running", progress=0.05, started_at_ms=self.clock.now_ms())
            loaded = await loop.run_in_executor(self._pool, load_candles, req, self.settings.data_dir)
            await self._update(job_id, progress=0.3)
            result = await loop.run_in_executor(self._pool, run_backtest, req, loaded.frame)
            await self._update(job_id, progress=0.8)
            path = self.settings.data_dir / "reports" / f"backtest-{job_id}.html"
            await loop.run_in_executor(self._pool, write_html_report, result, path)
            await self._update(job_id, status="done", progress=1.0, result=result_json(result, loaded),
                               report_path=str(path), finished_at_ms=self.clock.now_ms())
            log.info("backtest job done", job=job_id, trades=len(result.trades))
        except Exception as exc:  # a job's failure is its result: stored for the owner, never lost
            log.warning("backtest job failed", job=job_id, error=str(exc))
            await self._update(job_id, status="failed", error=_reason(exc), finished_at_ms=self.clock.now_ms())
        finally:
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


def _reason(exc: Exception) -> str:
    if isinstance(exc, NoCandles | FieldError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def job_json(row: BacktestJobRow) -> dict[str, Any]:
    return {
        "id": row.id, "status": row.status, "progress": row.progress, "request": row.request,
        "result": row.result, "error": row.error,
        "report_url": f"/api/v1/backtests/{row.id}/report" if row.report_path else None,
        "created_at": row.created_at_ms, "started_at": row.started_at_ms, "finished_at": row.finished_at_ms,
    }


# One job runner per Runtime (keyed by identity), shared by every request of the process.
_JOBS: dict[int, tuple[weakref.ref[Any], BacktestJobs]] = {}


def jobs_for(runtime: Any) -> BacktestJobs:
    entry = _JOBS.get(id(runtime))
    if entry is None or entry[0]() is not runtime:
        entry = (weakref.ref(runtime), BacktestJobs(runtime.sessions, runtime.clock, runtime.settings))
        _JOBS[id(runtime)] = entry
    return entry[1]
