"""HTTP API for volume alerts: ingest from an external detector, list newest first, recent hours.

Alerts go out in their camelCase wire form with epoch-ms timestamps (see `marketpulse.detection.models`).
The ingest body is one alert object or a JSON array of them (at most MAX_INGEST_ALERTS), the seed's fields in
camelCase; `timestamp`/`hourTimestamp` are epoch milliseconds or ISO 8601 strings (naive ones are UTC).
`asset`, `message`, `hourTimestamp` and `isUpdate` may be left out: they are derived (asset from the symbol, the
message from the numbers, the hour from the timestamp (a FULL_UPDATE's: the hour closing at it), isUpdate from the
type).
What poisons the feed is refused: a `timestamp` outside the ingest window around the process's market clock
(PULSE_INGEST_TIME_WINDOW_S before it, 60 s of clock skew after it; a far-future alert would top the newest-first
list for good), an `hourTimestamp` that isn't the start of `timestamp`'s hour or of the hour closing at it (it
would dodge the one-per-hour rule), and a symbol outside the exchanges' character set once separators are removed
(2-30 of A-Z and 0-9).
"Now" (the window, `recent?hours=N`) is the process's market clock: the replay's in `pulse demo`, not the wall's.
Errors: 401 (key checked before the body), 413 (body over PULSE_MAX_BODY_BYTES), 422 with one entry per bad field
(FastAPI's `{"detail": [{"loc": ["body", 0, "timestamp"], "msg": …}]}` shape); on 422 nothing is stored.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

from marketpulse.accounts.views import CALLER_REFUSALS, caller_plan
from marketpulse.api.pages import Page
from marketpulse.api.security import read_limited_body, require_api_key
from marketpulse.api.types import NoNul, Symbol
from marketpulse.bus import topics
from marketpulse.detection.models import VolumeAlert, alert_message
from marketpulse.detection.service import DEFAULT_LIMIT, MAX_LIMIT, VolumeAlertStore
from marketpulse.marketdata.intervals import HOUR_MS
from marketpulse.marketdata.models import asset_of, exchange_symbol, normalize_symbol
from marketpulse.marketdata.open_interest import FUTURE_TOLERANCE_MS
from marketpulse.realtime.tiers import plan_of
from marketpulse.runtime import Runtime
from marketpulse.times import EpochMs
from marketpulse.wire import WIRE_MODEL

router = APIRouter(prefix="/api/v1/volume-alerts", tags=["volume alerts"])

MAX_INGEST_ALERTS = 1000
MAX_RECENT_HOURS = 24 * 30


Volume = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class VolumeAlertIn(BaseModel):
    """One alert as an external detector sends it (the seed's VolumeAlert fields, camelCase)."""

    # camelCase keys only (as sent by the seed's detectors); unknown keys are ignored
    model_config = WIRE_MODEL | ConfigDict(extra="ignore", str_strip_whitespace=True, validate_by_name=False)

    symbol: Symbol
    asset: Annotated[str | None, Field(max_length=64), NoNul] = None
    current_volume: Volume
    previous_volume: Volume
    volume_ratio: Volume
    price: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None
    funding_rate: Annotated[float | None, Field(allow_inf_nan=False)] = None
    candle_direction: Literal["bullish", "bearish"]
    alert_type: Literal["SPIKE", "HALF_UPDATE", "FULL_UPDATE"]
    message: Annotated[str | None, Field(max_length=512), NoNul] = None
    timestamp: EpochMs
    hour_timestamp: EpochMs | None = None
    is_update: bool | None = None

    @field_validator("symbol")
    @classmethod
    def _exchange_symbol(cls, value: str) -> str:
        return exchange_symbol(value)

    @field_validator("timestamp")
    @classmethod
    def _within_window(cls, value: int, info: ValidationInfo) -> int:
        window: IngestWindow | None = (info.context or {}).get("window")
        if window is not None:
            window.check(value)
        return value

    @field_validator("hour_timestamp")
    @classmethod
    def _hour_of_timestamp(cls, value: int | None, info: ValidationInfo) -> int | None:
        timestamp = info.data.get("timestamp")  # absent when `timestamp` itself was refused
        if value is None or timestamp is None:
            return value
        hour = timestamp - timestamp % HOUR_MS
        # A scan on the hour (FULL_UPDATE; SPIKE from hourly candles) reports the hour that just closed.
        if value != hour and not (timestamp == hour and value == hour - HOUR_MS):
            raise ValueError(f"must be the start of the hour of `timestamp` ({hour}), or of the hour closing at it")
        return value

    def to_alert(self) -> VolumeAlert:
        symbol = self.symbol
        hour = self.hour_timestamp if self.hour_timestamp is not None else _hour_reported(self.alert_type,
                                                                                          self.timestamp)
        return VolumeAlert(
            symbol=symbol,
            asset=self.asset or asset_of(symbol),
            current_volume=self.current_volume,
            previous_volume=self.previous_volume,
            volume_ratio=self.volume_ratio,
            price=self.price,
            funding_rate=self.funding_rate,
            candle_direction=self.candle_direction,
            alert_type=self.alert_type,
            message=self.message
            or alert_message(symbol, self.alert_type, self.volume_ratio, self.current_volume, self.previous_volume),
            timestamp=self.timestamp,
            hour_timestamp=hour,
            is_update=self.is_update if self.is_update is not None else self.alert_type != "SPIKE",
        )


def _hour_reported(alert_type: str, timestamp: int) -> int:
    """The hour an alert reports when the sender left it out: a FULL_UPDATE's is the hour closing at its time."""
    reference = timestamp - 1 if alert_type == "FULL_UPDATE" else timestamp
    return reference - reference % HOUR_MS


class IngestWindow:
    """The times an ingest accepts: from `window_ms` before `now_ms` to the clock skew after it."""

    def __init__(self, now_ms: int, window_ms: int) -> None:
        self.now_ms, self.window_ms = now_ms, window_ms

    def check(self, ms: int) -> None:
        if ms > self.now_ms + FUTURE_TOLERANCE_MS:
            raise ValueError(f"is in the future: the clock reads {self.now_ms} (at most "
                             f"{FUTURE_TOLERANCE_MS // 1000} s of clock skew is allowed)")
        if ms < self.now_ms - self.window_ms:
            raise ValueError(f"is older than the ingest window of {self.window_ms // 1000} s before the clock "
                             f"({self.now_ms}); see PULSE_INGEST_TIME_WINDOW_S")


_ONE = TypeAdapter(VolumeAlertIn)
_MANY = TypeAdapter(list[VolumeAlertIn])


class IngestOut(BaseModel):
    stored: int = Field(description="Alerts newly stored (and published)")
    duplicates: int = Field(description="Alerts already stored for that symbol, hour and type; skipped")
    alerts: list[dict[str, Any]] = Field(description="The newly stored alerts, wire form, with their ids")


class AlertsOut(Page[dict[str, Any]]):
    """`data`: alerts in wire form (camelCase, epoch-ms times), newest first."""

    count: int
    plan: str = Field(description="The caller's plan (anonymous: free); it caps how many alerts are listed")


def plan_limit(limit: int, plan: str | None) -> int:
    """`limit`, capped at the plan's `volume_alerts_listed` (None: unlimited)."""
    cap = plan_of(plan).volume_alerts_listed
    return limit if cap is None else min(limit, cap)


def parse_ingest_body(body: bytes, window: IngestWindow | None = None) -> list[VolumeAlert]:
    """The alerts in an ingest body; HTTPException 422 with field-level errors when any is invalid (or, with a
    `window`, lies outside it)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _unprocessable([{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) from None
    if isinstance(payload, list) and len(payload) > MAX_INGEST_ALERTS:
        raise _unprocessable([{"loc": ["body"], "msg": f"at most {MAX_INGEST_ALERTS} alerts per request",
                               "type": "too_long"}])
    try:
        context = {"window": window}
        parsed = (_MANY.validate_python(payload, context=context) if isinstance(payload, list)
                  else [_ONE.validate_python(payload, context=context)])
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        for error in errors:
            error["loc"] = ("body", *error["loc"])
        raise _unprocessable(errors) from None
    return [p.to_alert() for p in parsed]


def _unprocessable(errors: list[Any]) -> HTTPException:
    for error in errors:
        if isinstance(error.get("input"), float) and not math.isfinite(error["input"]):
            error["input"] = str(error["input"])  # NaN/Infinity can't go back out as JSON
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errors)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.post(
    "/ingest",
    response_model=IngestOut,
    dependencies=[Depends(require_api_key)],
    responses={401: {"description": "Missing or wrong X-API-Key"}, 413: {"description": "Body over the limit"},
               422: {"description": "Invalid body; one error per bad field, nothing stored"}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [VolumeAlertIn.model_json_schema(), {"type": "array", "items": {"type": "object"}}]}}}}},
)
async def ingest_volume_alerts(request: Request) -> dict[str, Any]:
    runtime = _runtime(request)
    window = IngestWindow(runtime.market_now_ms(), runtime.settings.ingest_time_window_s * 1000)
    alerts = parse_ingest_body(await read_limited_body(request), window)
    stored = await VolumeAlertStore(runtime.sessions).save(alerts)
    for alert in stored:
        await runtime.bus.publish(topics.ALERTS_VOLUME, alert)
    return {"stored": len(stored), "duplicates": len(alerts) - len(stored), "alerts": [a.to_wire() for a in stored]}


@router.get("", response_model=AlertsOut, responses=CALLER_REFUSALS)
async def list_volume_alerts(
    request: Request,
    plan: Annotated[str | None, Depends(caller_plan)],
    symbol: Annotated[str | None, Query(max_length=64, description="Only this symbol (BTCUSDT, btc-usdt, …)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Newest first, at most `limit` and at most the caller's plan's `volume_alerts_listed` (Bearer token, API key
    or session cookie; anonymous: free)."""
    wanted = normalize_symbol(symbol) if symbol else None
    alerts = await VolumeAlertStore(_runtime(request).sessions).latest(symbol=wanted,
                                                                      limit=plan_limit(limit, plan))
    return {"data": [a.to_wire() for a in alerts], "next": None, "count": len(alerts),
            "plan": plan_of(plan).name}


@router.get("/recent", response_model=AlertsOut, responses=CALLER_REFUSALS)
async def recent_volume_alerts(
    request: Request,
    plan: Annotated[str | None, Depends(caller_plan)],
    hours: Annotated[int, Query(ge=1, le=MAX_RECENT_HOURS, description="Alerts raised in the last N hours")] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
) -> dict[str, Any]:
    """As the list, over the last `hours`: also capped at the caller's plan's count."""
    runtime = _runtime(request)
    since = runtime.market_now_ms() - hours * HOUR_MS
    alerts = await VolumeAlertStore(runtime.sessions).since(since, limit=plan_limit(limit, plan))
    return {"data": [a.to_wire() for a in alerts], "next": None, "count": len(alerts),
            "plan": plan_of(plan).name}


class AlertCountsOut(BaseModel):
    total: int = Field(description="Every stored alert (of the symbol, when given), whatever the plan lists")
    by_type: dict[str, int] = Field(serialization_alias="byType",
                                    description="SPIKE, HALF_UPDATE and FULL_UPDATE counts")


@router.get("/count", response_model=AlertCountsOut, response_model_by_alias=True)
async def count_volume_alerts(
    request: Request,
    symbol: Annotated[str | None, Query(max_length=64, description="Only this symbol (BTCUSDT, btc-usdt, …)")] = None,
) -> AlertCountsOut:
    """How many alerts are stored: the dashboard's panel shows this total, not how many it loaded."""
    wanted = normalize_symbol(symbol) if symbol else None
    counts = await VolumeAlertStore(_runtime(request).sessions).counts(symbol=wanted)
    return AlertCountsOut(total=sum(counts.values()), by_type=counts)
