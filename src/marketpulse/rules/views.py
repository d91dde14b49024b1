"""HTTP routes for alert rules (a user's own conditions; the market-wide volume-spike alerts are `detection/`).

    POST   /api/v1/alerts/rules                 a rule (see `model.RuleIn`) → 201 the rule with its id
    GET    /api/v1/alerts/rules                 the owner's rules
    GET    /api/v1/alerts/rules/{id}            one
    PUT    /api/v1/alerts/rules/{id}            the whole rule again
    DELETE /api/v1/alerts/rules/{id}            → 204
    POST   /api/v1/alerts/rules/{id}/pause      enabled = false;  /resume: enabled = true (counts against the plan)
    POST   /api/v1/alerts/rules/preview         a rule and `days` → when it would have fired, and the credits
    GET    /api/v1/alerts/history               matches, newest first (`rule_id`, `before`, `limit`)

A signed-in user (Bearer access token or the session cookie with its CSRF header) or a personal API key with the
`alerts` scope; another user's rule answers 404. Invalid conditions are a 422 naming the field and why; a channel
that is not one of the owner's destinations, or that the plan does not deliver by, is a 422 naming `channels[i]`;
one active rule more than the plan allows is a 409 `{"reason": "active_alert_rules", "limit": …}`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import Principal
from marketpulse.accounts.views import current_user
from marketpulse.api.errors import error_responses
from marketpulse.api.pages import Page, page
from marketpulse.backtest.candles import CandleQuery, NoCandles, load_candles
from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import DAY_MS
from marketpulse.rules.model import RuleIn, bad_field
from marketpulse.rules.preview import replay
from marketpulse.rules.service import BadTargets, PlanLimit, RuleNotFound, RulesService
from marketpulse.rules.tables import AlertHistoryRow, AlertRuleRow
from marketpulse.times import EpochMs

router = APIRouter(prefix="/api/v1/alerts", tags=["alert rules"], responses={**UNAUTHORIZED, 403: {
    "description": "The account is suspended or banned, a cookie-authenticated change lacks its CSRF header, or an "
                   "API key lacks the `alerts` scope"}})
PREVIEW_MAX_SYMBOLS = 20
PREVIEW_MAX_DAYS = 30


def get_rules(request: Request) -> RulesService:
    rules: RulesService = request.app.state.runtime.services.rules
    return rules


async def rules_user(principal: Principal = Depends(current_user)) -> Principal:
    """A signed-in user, or an API key with the `alerts` scope."""
    if not principal.allows("alerts"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "reason": "scope", "message": "this API key lacks the 'alerts' scope", "scope": "alerts"})
    return principal


class RuleOut(RuleIn):
    model_config = ConfigDict(extra="ignore")

    id: str
    version: int
    fired_count: int
    last_fired_at: int | None = Field(None, description="epoch ms (market time) of the newest match")
    created_at: int
    updated_at: int


def rule_json(row: AlertRuleRow) -> RuleOut:
    return RuleOut.model_validate({**row.spec, "name": row.name, "enabled": row.enabled, "id": row.id,
                                   "version": row.version, "fired_count": row.fired_count,
                                   "last_fired_at": row.last_fired_at_ms, "created_at": row.created_at_ms,
                                   "updated_at": row.updated_at_ms})


class HistoryOut(BaseModel):
    id: str
    rule_id: str
    rule_name: str
    event_key: str
    symbol: str
    field: str | None
    value: float | None
    message: str
    channels: list[str]
    time: int
    created_at: int


def history_json(row: AlertHistoryRow) -> HistoryOut:
    return HistoryOut(id=row.id, rule_id=row.rule_id, rule_name=row.rule_name, event_key=row.event_key,
                      symbol=row.symbol, field=row.field, value=row.value, message=row.message,
                      channels=list(row.channels), time=row.time_ms, created_at=row.created_at_ms)


def _not_found(rule_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert rule {rule_id}")


async def _guarded(call: Any) -> AlertRuleRow:
    """A service call whose refusals become the documented answers."""
    try:
        row: AlertRuleRow = await call
        return row
    except RuleNotFound as exc:
        raise _not_found(str(exc)) from None
    except BadTargets as exc:
        raise RequestValidationError(exc.errors) from None
    except PlanLimit as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=exc.detail()) from None


_RULE_OUT: dict[str, Any] = {"response_model": RuleOut, "response_model_exclude_none": True}  # as written
_NOT_FOUND = {404: "No such rule of yours"}
_LIMIT = {409: "One active rule more than the plan allows"}
_RULE_ERRORS = error_responses(_NOT_FOUND | _LIMIT)


@router.post("/rules", status_code=status.HTTP_201_CREATED, **_RULE_OUT, responses=_RULE_ERRORS)
async def create_rule(body: RuleIn, principal: Principal = Depends(rules_user),
                      rules: RulesService = Depends(get_rules)) -> RuleOut:
    return rule_json(await _guarded(rules.create(principal.user.id, principal.user.plan, body)))


@router.get("/rules", response_model=Page[RuleOut])
async def list_rules(principal: Principal = Depends(rules_user),
                     rules: RulesService = Depends(get_rules)) -> JSONResponse:
    """`data`: the caller's rules, each without its unset (null) fields as `GET /rules/{id}` gives it."""
    rows = [rule_json(r).model_dump(mode="json", exclude_none=True) for r in await rules.list_rules(principal.user.id)]
    return JSONResponse({"data": rows, "next": None})


class PreviewIn(RuleIn):
    days: int = Field(7, ge=1, le=PREVIEW_MAX_DAYS, description="replay the last N days of stored candles")


class PreviewFire(BaseModel):
    time: int
    symbol: str
    field: str | None
    value: float | None


class PreviewOut(BaseModel):
    fires: list[PreviewFire]
    count: int
    credits: int = Field(description="what the fires would have cost on the rule's channels")
    credits_per_fire: int
    start: int
    end: int
    sources: dict[str, str] = Field(description="where each symbol's candles came from")
    no_data: list[str] = Field(description="symbols without candles in the range")
    not_replayable: list[str] = Field(description="conditions the candle history can't replay (never match here)")


_PREVIEW_ERRORS = error_responses({422: "A bad rule, or more symbols than a preview replays"})


@router.post("/rules/preview", response_model=PreviewOut, responses=_PREVIEW_ERRORS)
async def preview_rule(body: PreviewIn, request: Request, principal: Principal = Depends(rules_user),
                       rules: RulesService = Depends(get_rules)) -> PreviewOut:
    targets = body.target_symbols()
    if not isinstance(targets, list) or len(targets) > PREVIEW_MAX_SYMBOLS:
        field = "watchlist" if body.watchlist is not None else "symbols"
        raise RequestValidationError([bad_field((field,), f"a preview replays at most {PREVIEW_MAX_SYMBOLS} named "
                                                          "symbols", None)])
    kinds = await rules.channel_kinds(principal.user.id, body.channels)
    if missing := [i for i, c in enumerate(body.channels) if c not in kinds]:
        raise RequestValidationError([bad_field(("channels", i), "no such destination of yours", body.channels[i])
                                      for i in missing])
    runtime = request.app.state.runtime
    end = runtime.market_now_ms()
    start = end - body.days * DAY_MS
    frames, sources = await asyncio.to_thread(_load, targets, body, start, end, runtime.settings.data_dir)
    rule = RuleIn.model_validate(body.model_dump(exclude={"days"}))
    result = await asyncio.to_thread(replay, rule, frames, [kinds[c] for c in body.channels])
    return PreviewOut(fires=[PreviewFire(time=m.time_ms, symbol=m.symbol, field=m.key, value=m.value)
                             for m in result.fires],
                      count=len(result.fires), credits=result.credits, credits_per_fire=result.credits_per_fire,
                      start=start, end=end, sources=sources, no_data=[s for s in targets if s not in frames],
                      not_replayable=result.not_replayable)


def _load(symbols: list[str], rule: RuleIn, start: int, end: int,
          data_dir: Any) -> tuple[dict[str, CandleFrame], dict[str, str]]:
    frames: dict[str, CandleFrame] = {}
    sources: dict[str, str] = {}
    for symbol in symbols:
        try:
            loaded = load_candles(CandleQuery(symbol, rule.interval, start=start, end=end), data_dir / "library")
        except NoCandles:
            continue
        frames[symbol], sources[symbol] = loaded.frame, loaded.source
    return frames, sources


@router.get("/rules/{rule_id}", **_RULE_OUT, responses=error_responses(_NOT_FOUND))
async def get_rule(rule_id: str, principal: Principal = Depends(rules_user),
                   rules: RulesService = Depends(get_rules)) -> RuleOut:
    return rule_json(await _guarded(rules.get(principal.user.id, rule_id)))


@router.put("/rules/{rule_id}", **_RULE_OUT, responses=_RULE_ERRORS)
async def replace_rule(rule_id: str, body: RuleIn, principal: Principal = Depends(rules_user),
                       rules: RulesService = Depends(get_rules)) -> RuleOut:
    return rule_json(await _guarded(rules.replace(principal.user.id, principal.user.plan, rule_id, body)))


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=error_responses(_NOT_FOUND))
async def delete_rule(rule_id: str, principal: Principal = Depends(rules_user),
                      rules: RulesService = Depends(get_rules)) -> Response:
    try:
        await rules.delete(principal.user.id, rule_id)
    except RuleNotFound:
        raise _not_found(rule_id) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/rules/{rule_id}/pause", **_RULE_OUT, responses=error_responses(_NOT_FOUND))
async def pause_rule(rule_id: str, principal: Principal = Depends(rules_user),
                     rules: RulesService = Depends(get_rules)) -> RuleOut:
    return rule_json(await _guarded(rules.set_enabled(principal.user.id, principal.user.plan, rule_id, False)))


@router.post("/rules/{rule_id}/resume", **_RULE_OUT, responses=error_responses(_NOT_FOUND | _LIMIT))
async def resume_rule(rule_id: str, principal: Principal = Depends(rules_user),
                      rules: RulesService = Depends(get_rules)) -> RuleOut:
    return rule_json(await _guarded(rules.set_enabled(principal.user.id, principal.user.plan, rule_id, True)))


@router.get("/history", response_model=Page[HistoryOut])
async def alert_history(principal: Principal = Depends(rules_user), rules: RulesService = Depends(get_rules),
                        rule_id: str | None = Query(None, max_length=36),
                        before: EpochMs | None = Query(None, description="only matches before this time"),
                        limit: int = Query(100, ge=1, le=1000)) -> Page[HistoryOut]:
    rows = await rules.history(principal.user.id, rule_id=rule_id, limit=limit, before_ms=before)
    return page([history_json(r) for r in rows])
