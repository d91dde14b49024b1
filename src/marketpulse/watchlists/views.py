"""Watchlists and volume-alert subscriptions over HTTP; every route needs a signed-in user (Bearer token, the
browser's cookies with the CSRF header, or an API key with `read`/`trade`) and acts on that user's rows only:
another user's id answers 404.

    GET    /api/v1/watchlist                          the user's watchlists
    POST   /api/v1/watchlist                          {name, symbols?} → 201
    GET    /api/v1/watchlist/{id}
    PATCH  /api/v1/watchlist/{id}                     {name?, symbols?} (symbols replaces the list)
    DELETE /api/v1/watchlist/{id}                     → 204
    POST   /api/v1/watchlist/{id}/items               {symbol} or {symbols: [...]}
    DELETE /api/v1/watchlist/{id}/items               {symbol} / {symbols: [...]} body, or ?symbol=
    GET    /api/v1/volume-alerts/subscriptions        (pro and up)
    POST   /api/v1/volume-alerts/subscriptions        {symbol}: a USDT perpetual or * → 201 (200: already there)
    DELETE /api/v1/volume-alerts/subscriptions/{id}   → 204

Symbols are normalised (btc-usdt → BTCUSDT) and must read as USDT perpetuals, else 422 naming the field; plan
limits (`watchlists`, `watchlist_symbols`, `volume_alert_subscriptions` in the plan table) answer 403.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from marketpulse.accounts.plans import Plan, plan_named
from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import Principal
from marketpulse.accounts.views import current_user, require_scope
from marketpulse.api.pages import Page
from marketpulse.services import Services, get_services
from marketpulse.watchlists import core
from marketpulse.watchlists.service import NameTaken, NotFound, Watchlist, WatchlistService

router = APIRouter(responses={**UNAUTHORIZED, 403: {"description": "The plan doesn't allow it, or the account or "
                                                                   "API key may not"}})

MAX_SYMBOLS_PER_REQUEST = 500  # an elite watchlist in one request; a longer list would meet the body limit (413)
Text = StringConstraints(min_length=1, max_length=40, pattern=r"^[^\x00]*$")
WatchSymbol = Annotated[str, Text, AfterValidator(core.usdt_perp_symbol)]
SubscriptionSymbol = Annotated[str, Text, AfterValidator(core.subscription_symbol)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=core.NAME_MAX_LENGTH, pattern=r"^[^\x00]*$"),
                 AfterValidator(core.clean_name)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such watchlist of yours"}}


class WatchlistOut(BaseModel):
    id: str
    name: str
    symbols: list[str]
    created_at_ms: int
    updated_at_ms: int


class WatchlistsOut(Page[WatchlistOut]):
    limit: int | None = Field(description="watchlists the plan allows (null: unlimited)")
    symbols_limit: int | None = Field(description="symbols per watchlist the plan allows (null: unlimited)")


class WatchlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    symbols: list[WatchSymbol] = Field(default_factory=list, max_length=MAX_SYMBOLS_PER_REQUEST)


class WatchlistChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    symbols: list[WatchSymbol] | None = Field(None, max_length=MAX_SYMBOLS_PER_REQUEST)

    @model_validator(mode="after")
    def _something(self) -> WatchlistChanges:
        if self.name is None and self.symbols is None:
            raise ValueError("give name, symbols or both")
        return self


class ItemsIn(BaseModel):
    """One symbol or several."""

    model_config = ConfigDict(extra="forbid")

    symbol: WatchSymbol | None = None
    symbols: list[WatchSymbol] | None = Field(None, min_length=1, max_length=MAX_SYMBOLS_PER_REQUEST)

    @model_validator(mode="after")
    def _one_or_many(self) -> ItemsIn:
        if self.symbol is None and self.symbols is None:
            raise ValueError("give symbol or symbols")
        return self

    def all(self) -> list[str]:
        return ([self.symbol] if self.symbol else []) + (self.symbols or [])


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: SubscriptionSymbol = Field(description="a USDT perpetual (BTCUSDT) or * for every symbol")


class SubscriptionOut(BaseModel):
    id: str
    symbol: str
    created_at_ms: int


class SubscriptionsOut(Page[SubscriptionOut]):
    limit: int | None = Field(description="subscriptions the plan allows (null: unlimited)")


async def signed_in(request: Request, principal: Principal = Depends(current_user)) -> Principal:
    require_scope(request, principal)  # an API key: `read` to look, `trade` to change
    return principal


def get_watchlists(services: Services = Depends(get_services)) -> WatchlistService:
    return services.watchlists


def _plan(principal: Principal) -> Plan:
    return plan_named(principal.user.plan)


def _out(w: Watchlist) -> WatchlistOut:
    return WatchlistOut(id=w.id, name=w.name, symbols=w.symbols, created_at_ms=w.created_at_ms,
                        updated_at_ms=w.updated_at_ms)


def _not_found(list_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no watchlist {list_id}")


def _refused(exc: core.LimitReached | core.PlanRequired) -> HTTPException:
    if isinstance(exc, core.PlanRequired):
        detail = {"reason": "plan_required", "plan": exc.plan, "message": str(exc)}
    else:
        detail = {"reason": "plan_limit", "field": exc.field, "message": str(exc)}
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def _name_taken(name: str | None) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", "name"), "type": "name_taken", "input": name,
                                    "msg": "you already have a watchlist with this name"}])


@router.get("/api/v1/watchlist", response_model=WatchlistsOut, tags=["watchlists"])
async def list_watchlists(principal: Principal = Depends(signed_in),
                          watchlists: WatchlistService = Depends(get_watchlists)) -> WatchlistsOut:
    plan = _plan(principal)
    return WatchlistsOut(data=[_out(w) for w in await watchlists.lists(principal.user.id)],
                         limit=plan.watchlists, symbols_limit=plan.watchlist_symbols)


@router.post("/api/v1/watchlist", response_model=WatchlistOut, status_code=status.HTTP_201_CREATED,
             tags=["watchlists"])
async def create_watchlist(body: WatchlistIn, principal: Principal = Depends(signed_in),
                           watchlists: WatchlistService = Depends(get_watchlists)) -> WatchlistOut:
    try:
        return _out(await watchlists.create(principal.user.id, _plan(principal), body.name, body.symbols))
    except (core.LimitReached, core.PlanRequired) as exc:
        raise _refused(exc) from None
    except NameTaken:
        raise _name_taken(body.name) from None


@router.get("/api/v1/watchlist/{list_id}", response_model=WatchlistOut, tags=["watchlists"], responses=NOT_FOUND)
async def get_watchlist(list_id: str, principal: Principal = Depends(signed_in),
                        watchlists: WatchlistService = Depends(get_watchlists)) -> WatchlistOut:
    try:
        return _out(await watchlists.get(principal.user.id, list_id))
    except NotFound:
        raise _not_found(list_id) from None


@router.patch("/api/v1/watchlist/{list_id}", response_model=WatchlistOut, tags=["watchlists"], responses=NOT_FOUND)
async def update_watchlist(list_id: str, body: WatchlistChanges, principal: Principal = Depends(signed_in),
                           watchlists: WatchlistService = Depends(get_watchlists)) -> WatchlistOut:
    try:
        return _out(await watchlists.update(principal.user.id, _plan(principal), list_id, body.name, body.symbols))
    except NotFound:
        raise _not_found(list_id) from None
    except (core.LimitReached, core.PlanRequired) as exc:
        raise _refused(exc) from None
    except NameTaken:
        raise _name_taken(body.name) from None


@router.delete("/api/v1/watchlist/{list_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               tags=["watchlists"], responses=NOT_FOUND)
async def delete_watchlist(list_id: str, principal: Principal = Depends(signed_in),
                           watchlists: WatchlistService = Depends(get_watchlists)) -> Response:
    try:
        await watchlists.delete(principal.user.id, list_id)
    except NotFound:
        raise _not_found(list_id) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/v1/watchlist/{list_id}/items", response_model=WatchlistOut, tags=["watchlists"],
             responses=NOT_FOUND)
async def add_items(list_id: str, body: ItemsIn, principal: Principal = Depends(signed_in),
                    watchlists: WatchlistService = Depends(get_watchlists)) -> WatchlistOut:
    field = "symbol" if body.symbols is None else "symbols"
    try:
        return _out(await watchlists.add(principal.user.id, _plan(principal), list_id, body.all(), field))
    except NotFound:
        raise _not_found(list_id) from None
    except (core.LimitReached, core.PlanRequired) as exc:
        raise _refused(exc) from None


@router.delete("/api/v1/watchlist/{list_id}/items", response_model=WatchlistOut, tags=["watchlists"],
               responses=NOT_FOUND)
async def remove_items(list_id: str, body: ItemsIn | None = None,
                       symbol: WatchSymbol | None = Query(None, description="the symbol to remove (or send a body)"),
                       principal: Principal = Depends(signed_in),
                       watchlists: WatchlistService = Depends(get_watchlists)) -> WatchlistOut:
    symbols = (body.all() if body else []) + ([symbol] if symbol else [])
    if not symbols:
        raise RequestValidationError([{"loc": ("query", "symbol"), "type": "missing", "input": None,
                                       "msg": "give ?symbol= or a {symbol} or {symbols} body"}])
    try:
        return _out(await watchlists.remove(principal.user.id, list_id, symbols))
    except NotFound:
        raise _not_found(list_id) from None


@router.get("/api/v1/volume-alerts/subscriptions", response_model=SubscriptionsOut, tags=["volume alerts"])
async def list_subscriptions(principal: Principal = Depends(signed_in),
                             watchlists: WatchlistService = Depends(get_watchlists)) -> SubscriptionsOut:
    plan = _plan(principal)
    try:
        core.check_subscriptions_allowed(plan)
    except core.PlanRequired as exc:
        raise _refused(exc) from None
    rows = await watchlists.subscriptions(principal.user.id)
    return SubscriptionsOut(data=[SubscriptionOut(id=r.id, symbol=r.symbol, created_at_ms=r.created_at_ms)
                                  for r in rows], limit=plan.volume_alert_subscriptions)


@router.post("/api/v1/volume-alerts/subscriptions", response_model=SubscriptionOut,
             status_code=status.HTTP_201_CREATED, tags=["volume alerts"],
             responses={200: {"description": "Already subscribed: the existing subscription"}})
async def subscribe(body: SubscriptionIn, response: Response, principal: Principal = Depends(signed_in),
                    watchlists: WatchlistService = Depends(get_watchlists)) -> SubscriptionOut:
    try:
        row, created = await watchlists.subscribe(principal.user.id, _plan(principal), body.symbol)
    except (core.LimitReached, core.PlanRequired) as exc:
        raise _refused(exc) from None
    except NameTaken:  # the same symbol subscribed by a concurrent request: it exists now
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"already subscribed to {body.symbol}") from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return SubscriptionOut(id=row.id, symbol=row.symbol, created_at_ms=row.created_at_ms)


@router.delete("/api/v1/volume-alerts/subscriptions/{sub_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, tags=["volume alerts"],
               responses={404: {"description": "No such subscription of yours"}})
async def unsubscribe(sub_id: str, principal: Principal = Depends(signed_in),
                      watchlists: WatchlistService = Depends(get_watchlists)) -> Response:
    try:
        await watchlists.unsubscribe(principal.user.id, sub_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no subscription {sub_id}") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
