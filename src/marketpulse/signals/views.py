"""HTTP routes for strategy signals.

Webhook (no account: the config's secret token is the credential):
    POST   /webhook/tradingview/{token}          application/json or text/plain, any format `core` reads → 200
           {"status": "accepted" | "duplicate" | "stale", "signal_id"} once the signal is durably stored; 401 bad
           token (a security event in the log, with the address), 400 malformed and 422 unknown symbol or
           timeframe (both kept for review with the raw body), 429 past PULSE_WEBHOOK_RATE_PER_MINUTE for the
           config, 403 outside PULSE_WEBHOOK_ALLOWED_IPS. The path may instead carry the config id, with the token
           as the body's `secret`.
Administrators (`/api/v1/admin`, behind PULSE_ADMIN_ALLOWED_IPS like every admin route; changes audited):
    POST|GET /signal-configs, GET|PATCH|DELETE /signal-configs/{id}, POST /signal-configs/{id}/rotate-token,
    GET /signal-configs/{id}/stats, GET /signals/queue, GET /signals/rejected (the malformed-payload review list)
Users (signed in, or an API key with the `alerts` scope):
    GET /api/v1/signals/strategies (each built-in strategy's config parameters: what the admin form offers),
    GET /api/v1/signals/configs (browse, with recent signals), POST|GET /api/v1/signals/subscriptions
    {config_id, channels}, PATCH|DELETE /api/v1/signals/subscriptions/{id}, GET /api/v1/signals/history
Pages: `/signals` (browse, backtest, subscribe, history); administrators manage configs in /admin's Signals tab.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import TimeoutError as PoolTimeout

from marketpulse.accounts.admin_views import admin_address, require_admin
from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import Principal
from marketpulse.accounts.views import current_user, get_accounts
from marketpulse.api.errors import error_responses
from marketpulse.api.pages import Cursor, Page, next_offset, offset_of, page
from marketpulse.metrics import WEBHOOK_ACK_SECONDS, WEBHOOK_REQUESTS
from marketpulse.settings import ip_networks
from marketpulse.signals.core import (
    PayloadError,
    UnknownMarket,
    accept,
    address_allowed,
    client_address,
    config_params,
    from_fields,
    map_interval,
    map_symbol,
    parse_body,
)
from marketpulse.signals.pine import pine_script
from marketpulse.signals.service import (
    BadChannels,
    DuplicateConfig,
    NotFound,
    PlanLimit,
    SignalsService,
    StoreBusy,
)
from marketpulse.signals.tables import SignalConfigRow, SignalHistoryRow, SignalRejectRow, SignalSubscriptionRow

log = structlog.get_logger(__name__)


def get_signals(request: Request) -> SignalsService:
    signals: SignalsService = request.app.state.runtime.services.signals
    return signals


# --- the webhook ---------------------------------------------------------------------------------------------------

webhook_router = APIRouter(tags=["signals"])


class WebhookAck(BaseModel):
    status: str = Field(description="accepted (queued for subscribers), duplicate (this bar and action were "
                                    "already received), or stale (older than its max_lag or two bars: kept, not sent)")
    signal_id: str | None


_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "additionalProperties": True}},
    "text/plain": {"schema": {"type": "string"}}}}}
_WEBHOOK_ERRORS = error_responses({
    400: "Malformed payload (kept for review with the raw body)", 401: "No active config has this token",
    403: "The sender's address is outside PULSE_WEBHOOK_ALLOWED_IPS",
    422: "Unknown symbol or timeframe (kept for review)", 429: "Too many requests for this config",
    503: "PULSE_WEBHOOK_QUEUE_LIMIT requests already wait for the store: nothing stored, retry"})


@webhook_router.post("/webhook/tradingview/{token}", response_model=WebhookAck, openapi_extra=_BODY,
                     responses=_WEBHOOK_ERRORS)
async def tradingview_webhook(request: Request, token: str = Path(min_length=1, max_length=100),
                              signals: SignalsService = Depends(get_signals)) -> WebhookAck:
    started = time.perf_counter()
    try:
        ack = await _receive(request, token, signals)
    except (PoolTimeout, StoreBusy):
        # PULSE_WEBHOOK_QUEUE_LIMIT requests already wait for the store, or (other routes holding every connection)
        # the pool's timeout passed: nothing was stored, so say so plainly rather than with a traceback.
        WEBHOOK_REQUESTS.labels("busy").inc()
        log.warning("webhook refused: no database connection came free in time")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"}, detail={
            "reason": "busy", "message": "too busy to store the signal now; nothing was stored, retry"}) from None
    except HTTPException as exc:
        if exc.status_code != status.HTTP_503_SERVICE_UNAVAILABLE:
            WEBHOOK_REQUESTS.labels(_FAILED.get(exc.status_code, "error")).inc()
        raise
    except RequestValidationError:
        WEBHOOK_REQUESTS.labels("unknown_market").inc()
        raise
    WEBHOOK_REQUESTS.labels(ack.status).inc()
    WEBHOOK_ACK_SECONDS.observe(time.perf_counter() - started)
    return ack


_FAILED = {400: "malformed", 401: "bad_token", 403: "forbidden", 429: "flood"}  # metric outcomes of refusals


async def _receive(request: Request, token: str, signals: SignalsService) -> WebhookAck:
    settings = request.app.state.runtime.settings
    peer = request.client.host if request.client else None
    sender = client_address(peer, request.headers.get("x-forwarded-for"), ip_networks(settings.webhook_trusted_proxies))
    if not address_allowed(sender, ip_networks(settings.webhook_allowed_ips)):
        log.warning("security: webhook from an address outside the allowlist", address=str(sender or peer))
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "address_not_allowed", "message": "this address may not send signals"})
    body = await request.body()
    content_type = request.headers.get("content-type")
    fields: dict[str, Any] | None = None
    problem: PayloadError | None = None
    try:
        fields = parse_body(body, content_type)
    except PayloadError as exc:
        problem = exc
    secret = fields.get("secret") if fields else None
    config = await signals.config_for_token(token, secret if isinstance(secret, str) else None)
    if config is None:
        log.warning("security: webhook with a bad token", address=str(sender or peer))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail={
            "reason": "bad_token", "message": "no active signal config has this token"})
    if await signals.flooded(config.id):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": "60"}, detail={
            "reason": "flood", "limit": settings.webhook_rate_per_minute, "window_s": 60,
            "message": "too many signals for this config in the last minute"})
    received = request.app.state.runtime.clock.now_ms()
    try:
        if problem is not None or fields is None:
            raise problem or PayloadError("body", "unreadable")
        signal = from_fields(fields)
        accepted = accept(signal, config_symbol=config.symbol, config_interval=map_interval(config.timeframe),
                          received_ms=received)
    except PayloadError as exc:
        await _reject(signals, config, 400, exc.field, exc.reason, content_type, body, sender or peer)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail={
            "reason": "malformed", "field": exc.field, "message": exc.reason}) from None
    except UnknownMarket as exc:
        await _reject(signals, config, 422, exc.field, exc.reason, content_type, body, sender or peer)
        raise RequestValidationError([{"loc": ("body", exc.field), "msg": exc.reason, "type": "unknown_market",
                                       "input": exc.value}]) from None
    done = await signals.ingest(config, accepted, payload=signal.to_json(),
                                raw=body.decode("utf-8", "replace"), source="tradingview")
    return WebhookAck(status=done.outcome, signal_id=done.signal_id)


async def _reject(signals: SignalsService, config: SignalConfigRow, code: int, field: str, reason: str,
                  content_type: str | None, body: bytes, client: Any) -> None:
    log.info("webhook payload refused", config=config.id, status=code, field=field, reason=reason[:120])
    await signals.reject(config_id=config.id, status_code=code, field=field, reason=reason,
                         content_type=content_type, raw=body, client=str(client) if client else None)


# --- administrators --------------------------------------------------------------------------------------------

admin_router = APIRouter(prefix="/api/v1/admin", tags=["admin", "signals"], dependencies=[Depends(admin_address)],
                         responses={**UNAUTHORIZED, 403: {"description": "Not an administrator, or the client "
                                                                         "address is outside PULSE_ADMIN_ALLOWED_IPS"}})
UT_BOT_FIELDS = ("key_value", "atr_period", "ema_period", "multiplier", "heikin_ashi")


class ConfigIn(BaseModel):
    """A strategy on a symbol and timeframe; the strategy's parameters are top-level fields (for UT Bot:
    `key_value` (or the seed's `multiplier`, the same ATR multiple), `atr_period`, `ema_period`, `heikin_ashi`;
    for the other built-ins their own, see `pulse backtest`)."""

    model_config = ConfigDict(extra="allow")

    symbol: str = Field(min_length=1, max_length=40, description="BTCUSDT (BINANCE:BTCUSDT.P is read as BTCUSDT)")
    timeframe: str = Field(min_length=1, max_length=8, description="1m … 1d, or TradingView's 60, 240, 1D")
    strategy: str = Field("ut_bot", max_length=32)
    active: bool = True
    computed: bool = Field(False, description="the platform computes the signals live on closed candles")
    key_value: float | None = Field(None, description="UT Bot: the ATR multiple (sensitivity)")
    multiplier: float | None = Field(None, description="UT Bot: the seed's name for key_value")
    atr_period: int | None = Field(None, description="UT Bot: ATR period")
    ema_period: int | None = Field(None, description="UT Bot: EMA of the source that crosses the stop (1: none)")
    heikin_ashi: bool | None = Field(None, description="UT Bot: signals from the Heikin Ashi close")


class ConfigPatch(ConfigIn):
    symbol: str | None = Field(None, min_length=1, max_length=40)  # type: ignore[assignment]
    timeframe: str | None = Field(None, min_length=1, max_length=8)  # type: ignore[assignment]
    strategy: str | None = Field(None, max_length=32)  # type: ignore[assignment]
    active: bool | None = None  # type: ignore[assignment]
    computed: bool | None = None  # type: ignore[assignment]


class ConfigOut(BaseModel):
    id: str
    symbol: str
    timeframe: str
    strategy: str
    parameters: dict[str, Any]
    active: bool
    computed: bool
    webhook_url: str
    token: str = Field(description="the webhook secret (in webhook_url; or send it as the body's `secret`)")
    pine: str = Field(description="Pine Script v5 whose alert() messages this webhook reads")
    created_at: int
    updated_at: int


def _params_of(body: ConfigIn) -> dict[str, Any]:
    fixed = {"symbol", "timeframe", "strategy", "active", "computed"}
    return {k: v for k, v in body.model_dump().items() if k not in fixed and v is not None}


def _validated(strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return config_params(strategy, params)
    except ValueError as exc:
        text = str(exc)
        if text.startswith("unknown strategy"):
            field = "strategy"
        else:
            field = next((k for k in params if f"'{k}'" in text or text.startswith(f"{k}:")), "parameters")
        raise RequestValidationError([{"loc": ("body", field), "msg": text[:300], "type": "value_error",
                                       "input": params.get(field)}]) from None


def _market(symbol: str, timeframe: str) -> tuple[str, str]:
    try:
        return map_symbol(symbol), map_interval(timeframe).value
    except UnknownMarket as exc:
        raise RequestValidationError([{"loc": ("body", exc.field), "msg": exc.reason, "type": "value_error",
                                       "input": exc.value}]) from None


def config_json(row: SignalConfigRow, public_url: str) -> ConfigOut:
    url = f"{public_url.rstrip('/')}/webhook/tradingview/{row.token}"
    return ConfigOut(id=row.id, symbol=row.symbol, timeframe=row.timeframe, strategy=row.strategy,
                     parameters=dict(row.params), active=row.active, computed=row.computed, webhook_url=url,
                     token=row.token, pine=pine_script(config_id=row.id, strategy=row.strategy, symbol=row.symbol,
                                                       timeframe=row.timeframe, params=row.params, webhook_url=url),
                     created_at=row.created_at_ms, updated_at=row.updated_at_ms)


def _public(request: Request) -> str:
    return str(request.app.state.runtime.settings.public_url)


def _config_404(config_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no signal config {config_id}")


def _duplicate(exc: DuplicateConfig) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail={
        "reason": "duplicate_config", "existing_id": exc.existing_id,
        "message": "a config with this symbol, timeframe, strategy and parameters exists"})


_NO_CONFIG = {404: "No such signal config"}
_DUP = {409: "A config with the same symbol, timeframe, strategy and parameters exists"}


async def _audit(request: Request, principal: Principal, action: str, row: SignalConfigRow,
                 new: dict[str, Any] | None = None) -> None:
    accounts = get_accounts(request)
    await accounts.audit.record(action, actor_id=principal.user.id, target_type="signal_config", target_id=row.id,
                                new=new, client=request.client.host if request.client else None)


def _summary(row: SignalConfigRow) -> dict[str, Any]:
    return {"symbol": row.symbol, "timeframe": row.timeframe, "strategy": row.strategy, "params": row.params,
            "active": row.active, "computed": row.computed}  # never the token


@admin_router.post("/signal-configs", status_code=status.HTTP_201_CREATED, response_model=ConfigOut,
                   responses=error_responses(_DUP))
async def create_config(body: ConfigIn, request: Request, principal: Principal = Depends(require_admin),
                        signals: SignalsService = Depends(get_signals)) -> ConfigOut:
    symbol, timeframe = _market(body.symbol, body.timeframe)
    params = _validated(body.strategy, _params_of(body))
    try:
        row = await signals.create_config(symbol=symbol, timeframe=timeframe, strategy=body.strategy,
                                          params=params, computed=body.computed, active=body.active)
    except DuplicateConfig as exc:
        raise _duplicate(exc) from None
    await _audit(request, principal, "signal_config.created", row, _summary(row))
    return config_json(row, _public(request))


@admin_router.get("/signal-configs", response_model=Page[ConfigOut])
async def list_configs(request: Request, _: Principal = Depends(require_admin),
                       signals: SignalsService = Depends(get_signals)) -> Page[ConfigOut]:
    return page([config_json(r, _public(request)) for r in await signals.list_configs()])


@admin_router.get("/signal-configs/{config_id}", response_model=ConfigOut, responses=error_responses(_NO_CONFIG))
async def get_config(config_id: str, request: Request, _: Principal = Depends(require_admin),
                     signals: SignalsService = Depends(get_signals)) -> ConfigOut:
    try:
        return config_json(await signals.config(config_id), _public(request))
    except NotFound:
        raise _config_404(config_id) from None


@admin_router.patch("/signal-configs/{config_id}", response_model=ConfigOut,
                    responses=error_responses(_NO_CONFIG | _DUP))
async def update_config(config_id: str, body: ConfigPatch, request: Request,
                        principal: Principal = Depends(require_admin),
                        signals: SignalsService = Depends(get_signals)) -> ConfigOut:
    try:
        row = await signals.config(config_id)
    except NotFound:
        raise _config_404(config_id) from None
    symbol, timeframe = _market(body.symbol or row.symbol, body.timeframe or row.timeframe)
    strategy = body.strategy or row.strategy
    given = _params_of(body)
    base = {k: v for k, v in row.params.items() if k != "mode"} if strategy == row.strategy else {}
    if "multiplier" in given:
        base.pop("key_value", None)
    changes: dict[str, Any] = {"symbol": symbol, "timeframe": timeframe, "strategy": strategy,
                               "params": _validated(strategy, base | given)}
    changes |= {k: v for k, v in (("active", body.active), ("computed", body.computed)) if v is not None}
    try:
        row = await signals.update_config(config_id, changes)
    except NotFound:
        raise _config_404(config_id) from None
    except DuplicateConfig as exc:
        raise _duplicate(exc) from None
    await _audit(request, principal, "signal_config.updated", row, _summary(row))
    return config_json(row, _public(request))


@admin_router.delete("/signal-configs/{config_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
                     responses=error_responses(_NO_CONFIG))
async def delete_config(config_id: str, request: Request, principal: Principal = Depends(require_admin),
                        signals: SignalsService = Depends(get_signals)) -> Response:
    try:
        row = await signals.config(config_id)
        await signals.delete_config(config_id)
    except NotFound:
        raise _config_404(config_id) from None
    await _audit(request, principal, "signal_config.deleted", row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin_router.post("/signal-configs/{config_id}/rotate-token", response_model=ConfigOut,
                   responses=error_responses(_NO_CONFIG))
async def rotate_token(config_id: str, request: Request, principal: Principal = Depends(require_admin),
                       signals: SignalsService = Depends(get_signals)) -> ConfigOut:
    try:
        row = await signals.rotate_token(config_id)
    except NotFound:
        raise _config_404(config_id) from None
    await _audit(request, principal, "signal_config.token_rotated", row)
    return config_json(row, _public(request))


class StatsOut(BaseModel):
    config_id: str
    signals_received: int = Field(description="stored signals (stale ones included), duplicates not")
    stale: int
    duplicates: int = Field(description="repeated requests for a bar and action already received")
    pending: int = Field(description="stored, waiting for the worker")
    users_notified: int
    deliveries: int = Field(description="notifications queued")
    deliveries_failed: int
    rejected: int = Field(description="payloads refused as malformed or for an unknown market")
    median_processing_ms: float | None = Field(description="receipt → notifications queued")
    median_delivery_ms: float | None = Field(description="receipt → delivered")


@admin_router.get("/signal-configs/{config_id}/stats", response_model=StatsOut,
                  responses=error_responses(_NO_CONFIG))
async def config_stats(config_id: str, _: Principal = Depends(require_admin),
                       signals: SignalsService = Depends(get_signals)) -> StatsOut:
    try:
        stats = await signals.stats(config_id)
    except NotFound:
        raise _config_404(config_id) from None
    return StatsOut(config_id=config_id, **stats.__dict__)


class QueueOut(BaseModel):
    depth: int = Field(description="signals stored and waiting for processing")
    processed_last_minute: int


@admin_router.get("/signals/queue", response_model=QueueOut)
async def signal_queue(_: Principal = Depends(require_admin),
                       signals: SignalsService = Depends(get_signals)) -> QueueOut:
    return QueueOut(**await signals.queue())


class RejectOut(BaseModel):
    id: int
    config_id: str
    status_code: int
    field: str
    reason: str
    content_type: str | None
    raw: str
    client: str | None
    received_at: int


class RejectPage(Page[RejectOut]):
    total: int
    limit: int
    offset: int


def reject_json(row: SignalRejectRow) -> RejectOut:
    return RejectOut(id=row.id, config_id=row.config_id, status_code=row.status_code, field=row.field,
                     reason=row.reason, content_type=row.content_type, raw=row.raw, client=row.client,
                     received_at=row.received_at_ms)


@admin_router.get("/signals/rejected", response_model=RejectPage)
async def rejected_payloads(_: Principal = Depends(require_admin), signals: SignalsService = Depends(get_signals),
                            config_id: str | None = Query(None, max_length=36),
                            limit: int = Query(50, ge=1, le=500),
                            offset: int = Query(0, ge=0, le=1_000_000), cursor: Cursor = None) -> RejectPage:
    offset = offset_of(offset, cursor)
    rows, total = await signals.rejects(config_id=config_id, limit=limit, offset=offset)
    return RejectPage(data=[reject_json(r) for r in rows], next=next_offset(offset, len(rows), total), total=total,
                      limit=limit, offset=offset)


# --- users -------------------------------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/signals", tags=["signals"], responses={**UNAUTHORIZED, 403: {
    "description": "The account is suspended or banned, or an API key lacks the `alerts` scope"}})


async def signals_user(principal: Principal = Depends(current_user)) -> Principal:
    if not principal.allows("alerts"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "scope", "message": "this API key lacks the 'alerts' scope", "scope": "alerts"})
    return principal


class SignalOut(BaseModel):
    id: str
    config_id: str
    source: str
    action: str
    symbol: str
    timeframe: str
    price: float | None
    bar_time: int
    received_at: int
    status: str = Field(description="processed, stale (not delivered) or received (waiting)")
    users_notified: int


def signal_json(row: SignalHistoryRow) -> SignalOut:
    return SignalOut(id=row.id, config_id=row.config_id, source=row.source, action=row.action, symbol=row.symbol,
                     timeframe=row.timeframe, price=row.price, bar_time=row.bar_time_ms,
                     received_at=row.received_at_ms, status=row.status, users_notified=row.users_notified)


class PublicConfigOut(BaseModel):
    id: str
    symbol: str
    timeframe: str
    strategy: str
    parameters: dict[str, Any]
    computed: bool
    recent_signals: list[SignalOut]


@router.get("/configs", response_model=Page[PublicConfigOut])
async def browse_configs(_: Principal = Depends(signals_user),
                         signals: SignalsService = Depends(get_signals)) -> Page[PublicConfigOut]:
    out = []
    for row in await signals.list_configs(active_only=True):
        recent = [signal_json(s) for s in await signals.recent(row.id, limit=10)]
        out.append(PublicConfigOut(id=row.id, symbol=row.symbol, timeframe=row.timeframe, strategy=row.strategy,
                                   parameters=dict(row.params), computed=row.computed, recent_signals=recent))
    return page(out)


class ParamOut(BaseModel):
    name: str
    kind: str = Field(description="int, float, bool or str")
    default: Any
    low: float | None
    high: float | None
    choices: list[Any] | None
    help: str


class StrategyOut(BaseModel):
    name: str
    description: str
    params: list[ParamOut] = Field(description="the config's top-level parameter fields")


def strategy_specs() -> list[StrategyOut]:
    """Each built-in strategy's config parameters (UT Bot with the seed's `ema_period`; its `multiplier` is another
    name for `key_value`, so the form offers `key_value` only)."""
    from marketpulse.signals.core import EMA_PERIOD_MAX
    from marketpulse.strategies import REGISTRY

    out = []
    for name, cls in sorted(REGISTRY.items()):
        params = [ParamOut(name=p.name, kind=p.kind.__name__, default=p.default, low=p.low, high=p.high,
                           choices=list(p.choices) if p.choices else None, help=p.help) for p in cls.params]
        if name == "ut_bot":
            params.insert(2, ParamOut(name="ema_period", kind="int", default=1, low=1, high=EMA_PERIOD_MAX,
                                      choices=None, help="EMA of the source crossing the stop (1: the source itself)"))
        out.append(StrategyOut(name=name, description=cls.description, params=params))
    return out


@router.get("/strategies", response_model=Page[StrategyOut])
async def list_strategies(_: Principal = Depends(signals_user)) -> Page[StrategyOut]:
    return page(strategy_specs())


class BacktestOut(BaseModel):
    trades: int = Field(description="closed trades (long on a buy, flat on a sell)")
    win_rate: float | None = Field(description="winning share of closed trades (None without any)")
    total_return: float = Field(description="fraction of the starting equity")
    start: int
    end: int
    bars: int
    source: str = Field(description="where the candles came from")


@router.get("/configs/{config_id}/backtest", response_model=BacktestOut,
            responses=error_responses({404: "No such signal config, or no candles for its market"}))
async def config_backtest(config_id: str, request: Request, _: Principal = Depends(signals_user),
                          signals: SignalsService = Depends(get_signals)) -> BacktestOut:
    """The config's strategy over the last year of candles (the existing backtest engine)."""
    from marketpulse.backtest.candles import NoCandles

    try:
        return BacktestOut(**await signals.backtest(config_id, request.app.state.runtime.market_now_ms()))
    except NotFound:
        raise _config_404(config_id) from None
    except NoCandles as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no candles to backtest: {exc}") from None


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config_id: str = Field(min_length=1, max_length=36)
    channels: list[str] = Field(min_length=1, max_length=10, description="your notification destinations' ids")


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[str] | None = Field(None, min_length=1, max_length=10)
    active: bool | None = None


class SubscriptionOut(BaseModel):
    id: str
    config_id: str
    channels: list[str]
    active: bool
    created_at: int
    updated_at: int


def subscription_json(row: SignalSubscriptionRow) -> SubscriptionOut:
    return SubscriptionOut(id=row.id, config_id=row.config_id, channels=list(row.channels), active=row.active,
                           created_at=row.created_at_ms, updated_at=row.updated_at_ms)


_SUB_ERRORS = error_responses({404: "No such signal config (or subscription of yours)",
                               409: "Already subscribed, or the plan allows no more subscriptions"})


@router.post("/subscriptions", status_code=status.HTTP_201_CREATED, response_model=SubscriptionOut,
             responses=_SUB_ERRORS)
async def subscribe(body: SubscriptionIn, principal: Principal = Depends(signals_user),
                    signals: SignalsService = Depends(get_signals)) -> SubscriptionOut:
    try:
        row = await signals.subscribe(principal.user.id, principal.user.plan, body.config_id, body.channels)
    except NotFound:
        raise _config_404(body.config_id) from None
    except BadChannels as exc:
        raise RequestValidationError(exc.errors) from None
    except PlanLimit as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=exc.detail()) from None
    except DuplicateConfig:
        raise HTTPException(status.HTTP_409_CONFLICT, detail={
            "reason": "already_subscribed", "message": "you already subscribe to this config"}) from None
    return subscription_json(row)


@router.get("/subscriptions", response_model=Page[SubscriptionOut])
async def list_subscriptions(principal: Principal = Depends(signals_user),
                             signals: SignalsService = Depends(get_signals)) -> Page[SubscriptionOut]:
    return page([subscription_json(r) for r in await signals.subscriptions(principal.user.id)])


@router.patch("/subscriptions/{subscription_id}", response_model=SubscriptionOut, responses=_SUB_ERRORS)
async def update_subscription(subscription_id: str, body: SubscriptionPatch,
                              principal: Principal = Depends(signals_user),
                              signals: SignalsService = Depends(get_signals)) -> SubscriptionOut:
    try:
        row = await signals.update_subscription(principal.user.id, principal.user.plan, subscription_id,
                                                channels=body.channels, active=body.active)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no subscription {subscription_id}") from None
    except BadChannels as exc:
        raise RequestValidationError(exc.errors) from None
    return subscription_json(row)


@router.delete("/subscriptions/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=error_responses({404: "No such subscription of yours"}))
async def unsubscribe(subscription_id: str, principal: Principal = Depends(signals_user),
                      signals: SignalsService = Depends(get_signals)) -> Response:
    try:
        await signals.unsubscribe(principal.user.id, subscription_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no subscription {subscription_id}") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/history", response_model=Page[SignalOut])
async def signal_history(principal: Principal = Depends(signals_user), signals: SignalsService = Depends(get_signals),
                         config_id: str | None = Query(None, max_length=36), limit: int = Query(50, ge=1, le=500),
                         offset: int = Query(0, ge=0, le=1_000_000), cursor: Cursor = None) -> Page[SignalOut]:
    offset = offset_of(offset, cursor)
    rows = await signals.history(principal.user.id, config_id=config_id, limit=limit, offset=offset)
    return page([signal_json(r) for r in rows], offset + len(rows) if len(rows) == limit else None)


# --- the page ------------------------------------------------------------------------------------------------------

page_router = APIRouter(include_in_schema=False)


@page_router.get("/signals", response_class=HTMLResponse)
async def signals_page() -> HTMLResponse:
    """Browse the configs (recent signals, last year's backtest), subscribe with channels, the signal history."""
    from marketpulse.web.account_pages import render

    return render("Strategy signals", template="signals.html", scripts=("signals.js",), narrow=False)
