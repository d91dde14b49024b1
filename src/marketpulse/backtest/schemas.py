"""The backtest job request (POST /api/v1/backtests) and its wire form; validation errors name the field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from marketpulse.backtest.tables import BacktestJobRow
from marketpulse.marketdata.intervals import Interval, IntervalField
from marketpulse.marketdata.models import normalize_symbol
from marketpulse.times import EpochMs


class BacktestRequest(BaseModel):
    """POST /api/v1/backtests. Invalid fields answer 422 naming the field (params: naming the parameter too)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    strategy: str = Field(examples=["ema_cross"])
    symbol: str | None = Field(None, max_length=64, examples=["BTCUSDT"])
    data: str | None = Field(
        None, validate_default=True, description="A candle CSV under the server's data_dir, instead of symbol"
    )
    exchange: str = Field("binance", max_length=32)
    interval: IntervalField = Field(Interval.H1, examples=["1h"])
    start: EpochMs | None = Field(None, alias="from", description="ISO date/time (UTC) or epoch ms; inclusive")
    end: EpochMs | None = Field(None, alias="to", description="ISO date/time (UTC) or epoch ms; exclusive")
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

    @field_validator("data")
    @classmethod
    def _one_source(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "symbol" in info.data and (info.data["symbol"] is None) == (v is None):
            raise ValueError("give either symbol (the candle library) or data (a CSV file), not both")
        return v

    @field_validator("start", "end", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if v == "" else v  # a form's empty date field

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
        return self.model_dump(by_alias=True, mode="json")


class FieldError(ValueError):
    """A request field the server can't honour (checked outside the model): the views answer 422 naming it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def job_json(row: BacktestJobRow) -> dict[str, Any]:
    return {
        "id": row.id, "status": row.status, "progress": row.progress, "request": row.request,
        "result": row.result, "error": row.error,
        "report_url": f"/api/v1/backtests/{row.id}/report" if row.report_path else None,
        "created_at": row.created_at_ms, "started_at": row.started_at_ms, "finished_at": row.finished_at_ms,
    }
