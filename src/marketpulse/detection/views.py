"""HTTP API for volume alerts: ingest from an external detector, list newest first, recent hours.

Alerts go out in their camelCase wire form with epoch-ms timestamps (see `marketpulse.detection.models`).
The ingest body is one alert object or a JSON array of them (at most MAX_INGEST_ALERTS), the seed's fields in
camelCase; `timestamp`/`hourTimestamp` are epoch milliseconds or ISO 8601 strings (naive ones are UTC).
`asset`, `message`, `hourTimestamp` and `isUpdate` may be left out: they are derived (asset from the symbol, the
message from the numbers, the hour from the timestamp, isUpdate from the type).
Errors: 401 (key checked before the body), 413 (body over PULSE_MAX_BODY_BYTES), 422 with one entry per bad field
(FastAPI's `{"detail": [{"loc": ["body", 0, "timestamp"], "msg": …}]}` shape); on 422 nothing is stored.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from marketpulse.api.security import read_limited_body, require_api_key
from marketpulse.api.types import NoNul, Symbol
from marketpulse.bus import topics
from marketpulse.detection.models import HOUR_MS, VolumeAlert, alert_message
from marketpulse.detection.service import DEFAULT_LIMIT, MAX_LIMIT, VolumeAlertStore
from marketpulse.marketdata.models import asset_of, normalize_symbol
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

    def to_alert(self) -> VolumeAlert:
        symbol = normalize_symbol(self.symbol)
        hour = self.hour_timestamp if self.hour_timestamp is not None else self.timestamp - self.timestamp % HOUR_MS
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


_ONE = TypeAdapter(VolumeAlertIn)
_MANY = TypeAdapter(list[VolumeAlertIn])


class IngestOut(BaseModel):
    stored: int = Field(description="Alerts newly stored (and published)")
    duplicates: int = Field(description="Alerts already stored for that symbol, hour and type; skipped")
    alerts: list[dict[str, Any]] = Field(description="The newly stored alerts, wire form, with their ids")


class AlertsOut(BaseModel):
    data: list[dict[str, Any]] = Field(description="Alerts in wire form (camelCase, epoch-ms times), newest first")
    count: int


def parse_ingest_body(body: bytes) -> list[VolumeAlert]:
    """The alerts in an ingest body; HTTPException 422 with field-level errors when any is invalid."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _unprocessable([{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) from None
    if isinstance(payload, list) and len(payload) > MAX_INGEST_ALERTS:
        raise _unprocessable([{"loc": ["body"], "msg": f"at most {MAX_INGEST_ALERTS} alerts per request",
                               "type": "too_long"}])
    try:
        parsed = _MANY.validate_python(payload) if isinstance(payload, list) else [_ONE.validate_python(payload)]
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
    alerts = parse_ingest_body(await read_limited_body(request))
    stored = await VolumeAlertStore(runtime.sessions).save(alerts)
    for alert in stored:
        await runtime.bus.publish(topics.ALERTS_VOLUME, alert)
    return {"stored": len(stored), "duplicates": len(alerts) - len(stored), "alerts": [a.to_wire() for a in stored]}


@router.get("", response_model=AlertsOut)
async def list_volume_alerts(
    request: Request,
    symbol: Annotated[str | None, Query(max_length=64, description="Only this symbol (BTCUSDT, btc-usdt, …)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    wanted = normalize_symbol(symbol) if symbol else None
    alerts = await VolumeAlertStore(_runtime(request).sessions).latest(symbol=wanted, limit=limit)
    return {"data": [a.to_wire() for a in alerts], "count": len(alerts)}


@router.get("/recent", response_model=AlertsOut)
async def recent_volume_alerts(
    request: Request,
    hours: Annotated[int, Query(ge=1, le=MAX_RECENT_HOURS, description="Alerts raised in the last N hours")] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
) -> dict[str, Any]:
    runtime = _runtime(request)
    since = runtime.clock.now_ms() - hours * HOUR_MS
    alerts = await VolumeAlertStore(runtime.sessions).since(since, limit=limit)
    return {"data": [a.to_wire() for a in alerts], "count": len(alerts)}
