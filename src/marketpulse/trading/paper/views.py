"""HTTP routes for paper trading: /api/v1/paper/{account,positions,orders,fills,deployments}.

Errors: 422 with field-level detail for bad input (FastAPI's shape: `{"detail": [{"loc": [...], "msg": ...}]}`);
409 `{"detail": {"reason": "max_concurrent_positions", "message": ..., "limit": ..., "value": ...}}` when the
risk manager refuses an order (nothing is stored); 404 for an id the owner doesn't have. An order or deployment on
a symbol with no market data (not in the live market, no stored candles) is a 422 naming `symbol`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from marketpulse.api.errors import error_responses
from marketpulse.api.pages import Page, page
from marketpulse.api.types import Amount
from marketpulse.marketdata.intervals import Interval, IntervalField
from marketpulse.marketdata.models import normalize_symbol
from marketpulse.services import get_services
from marketpulse.strategies import get_strategy
from marketpulse.trading.owners import OWNER_RESPONSES, current_owner
from marketpulse.trading.paper.deployments import DeploymentNotFound, DeploymentService, DeploymentSpec
from marketpulse.trading.paper.orders import OrderSpec, OrderType, Side, TimeInForce
from marketpulse.trading.paper.service import (
    OrderNotFound,
    OrderNotOpen,
    PaperTradingService,
    PositionBusy,
    PositionNotFound,
    RiskRejected,
    UnknownSymbol,
)
from marketpulse.trading.paper.tables import PaperDeploymentRow, PaperFillRow, PaperOrderRow, PaperPositionRow

router = APIRouter(prefix="/api/v1/paper", tags=["paper trading"], responses=OWNER_RESPONSES)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=1, max_length=64, examples=["BTCUSDT"])
    side: Side
    type: OrderType = OrderType.MARKET
    # Bounded (MAX_AMOUNT) so quantity × price, the notional the risk checks use, stays finite.
    quantity: Amount = Field(description="In base units (BTC for BTCUSDT)")
    limit_price: Amount | None = Field(None, validate_default=True)
    stop_price: Amount | None = Field(None, validate_default=True)
    time_in_force: TimeInForce = TimeInForce.GTC

    @field_validator("symbol")
    @classmethod
    def _normalize(cls, v: str) -> str:
        return normalize_symbol(v)

    @field_validator("limit_price")
    @classmethod
    def _limit_needed(cls, v: float | None, info: ValidationInfo) -> float | None:
        return _price_for(OrderType.LIMIT, "limit_price", v, info)

    @field_validator("stop_price")
    @classmethod
    def _stop_needed(cls, v: float | None, info: ValidationInfo) -> float | None:
        return _price_for(OrderType.STOP, "stop_price", v, info)

    def spec(self) -> OrderSpec:
        return OrderSpec(self.symbol, self.side, self.type, self.quantity, self.time_in_force, self.limit_price,
                         self.stop_price)


def _price_for(kind: OrderType, name: str, v: float | None, info: ValidationInfo) -> float | None:
    order_type = info.data.get("type")
    if order_type is kind and v is None:
        raise ValueError(f"{name} is required for {kind.value} orders")
    if order_type is not None and order_type is not kind and v is not None:
        raise ValueError(f"{name} only applies to {kind.value} orders")
    return v


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(examples=["ema_cross"])
    symbol: str = Field(min_length=1, max_length=64)
    interval: IntervalField = Interval.H1
    params: dict[str, Any] = Field(default_factory=dict)
    cash: Amount | None = Field(None, description="Default: the account's equity")
    size: float = Field(1.0, gt=0, le=1, description="Fraction of the deployment's equity per entry")
    long_only: bool = False

    @field_validator("symbol")
    @classmethod
    def _normalize(cls, v: str) -> str:
        return normalize_symbol(v)

    @field_validator("strategy")
    @classmethod
    def _known(cls, v: str) -> str:
        get_strategy(v)  # ValueError listing the known names
        return v


class StopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    close_position: bool = Field(
        False, description="Close the deployment's position at the market; false leaves it open for the owner"
    )


def _unknown_symbol(exc: UnknownSymbol) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", "symbol"), "msg": str(exc), "type": "value_error", "input": exc.symbol}]
    )


def _note_live_price(request: Request, paper: PaperTradingService, symbol: str) -> None:
    """The symbol's price in the live market table, when this process has one: an order is judged at the market
    as it is now, and a symbol the live market lists is known even before a candle of it is stored."""
    feed = getattr(request.app.state, "market_feed", None)
    if feed is None:
        return
    price = next((row["price"] for row in feed.snapshot() if row["symbol"] == symbol), None)
    if isinstance(price, int | float):
        paper.note_prices({symbol: float(price)})


def _services(request: Request) -> tuple[PaperTradingService, DeploymentService]:
    services = get_services(request)  # built once with the runtime (marketpulse.services)
    return services.paper, services.deployments


def _paper(request: Request) -> PaperTradingService:
    return _services(request)[0]


def _deployments(request: Request) -> DeploymentService:
    return _services(request)[1]


# --- account and positions -----------------------------------------------------------------------------------
@router.get("/account")
async def get_account(owner: str = Depends(current_owner), paper: PaperTradingService = Depends(_paper)) -> Any:
    return await paper.account(owner)


@router.get("/positions", response_model=Page[dict[str, Any]])
async def get_positions(owner: str = Depends(current_owner), paper: PaperTradingService = Depends(_paper)) -> Any:
    return page([position_json(p) for p in await paper.positions(owner)])


@router.post("/positions/{symbol}/close", responses=error_responses(
    {404: "No open position in that symbol", 409: "The position is a running deployment's: stop it first"}))
async def close_position(
    request: Request, symbol: str, owner: str = Depends(current_owner), paper: PaperTradingService = Depends(_paper),
    deployment_id: str | None = Query(
        None, max_length=36, description="Close the position a stopped deployment left; default: your own trades'"
    ),
) -> Any:
    """Close a position in one action: a market order for all of it, filled at the last price seen."""
    _note_live_price(request, paper, normalize_symbol(symbol))
    try:
        return order_json(await paper.close_position(owner, normalize_symbol(symbol), deployment_id or ""))
    except PositionNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no open {symbol} position") from None
    except PositionBusy as exc:
        detail = {"reason": "deployment_running", "message": str(exc)}
        raise HTTPException(status.HTTP_409_CONFLICT, detail=detail) from None


# --- orders ----------------------------------------------------------------------------------------------------
@router.post("/orders", status_code=status.HTTP_201_CREATED,
             responses=error_responses({409: "The risk manager refused it; `detail.reason` says why"}))
async def place_order(
    request: Request, body: OrderIn, owner: str = Depends(current_owner), paper: PaperTradingService = Depends(_paper)
) -> Any:
    _note_live_price(request, paper, body.symbol)
    try:
        row = await paper.place_order(owner, body.spec())
    except UnknownSymbol as exc:
        raise _unknown_symbol(exc) from None
    except RiskRejected as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=exc.rejection.detail()) from None
    return order_json(row)


@router.get("/orders", response_model=Page[dict[str, Any]])
async def list_orders(
    owner: str = Depends(current_owner), paper: PaperTradingService = Depends(_paper),
    status_: Literal["open", "filled", "cancelled", "expired", "rejected"] | None = Query(None, alias="status"),
    limit: int = Query(200, ge=1, le=1000),
) -> Any:
    return page([order_json(o) for o in await paper.orders(owner, status_, limit)])


@router.get("/orders/{order_id}", responses=error_responses({404: "No such order of this owner"}))
async def get_order(order_id: str, owner: str = Depends(current_owner),
                    paper: PaperTradingService = Depends(_paper)) -> Any:
    try:
        return order_json(await paper.order(owner, order_id))
    except OrderNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no order {order_id}") from None


@router.delete("/orders/{order_id}",
               responses=error_responses({404: "No such order of this owner", 409: "The order is no longer open"}))
async def cancel_order(order_id: str, owner: str = Depends(current_owner),
                       paper: PaperTradingService = Depends(_paper)) -> Any:
    try:
        return order_json(await paper.cancel_order(owner, order_id))
    except OrderNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no order {order_id}") from None
    except OrderNotOpen as exc:
        detail = {"reason": "order_not_open", "message": str(exc), "status": exc.order.status}
        raise HTTPException(status.HTTP_409_CONFLICT, detail=detail) from None


@router.get("/fills", response_model=Page[dict[str, Any]])
async def list_fills(owner: str = Depends(current_owner), paper: PaperTradingService = Depends(_paper),
                     limit: int = Query(200, ge=1, le=1000)) -> Any:
    return page([fill_json(f) for f in await paper.fills(owner, limit)])


# --- deployments -----------------------------------------------------------------------------------------------
@router.post("/deployments", status_code=status.HTTP_201_CREATED)
async def deploy(request: Request, body: DeploymentIn, owner: str = Depends(current_owner),
                 deployments: DeploymentService = Depends(_deployments)) -> Any:
    _note_live_price(request, deployments.paper, body.symbol)
    try:
        get_strategy(body.strategy).resolve_params(body.params)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "params"), "msg": str(exc), "type": "value_error", "input": body.params}]
        ) from None
    spec = DeploymentSpec(body.strategy, body.symbol, body.interval, body.params, body.cash, body.size,
                          body.long_only)
    try:
        return deployment_json(await deployments.deploy(owner, spec), deployments)
    except UnknownSymbol as exc:
        raise _unknown_symbol(exc) from None


@router.get("/deployments", response_model=Page[dict[str, Any]])
async def list_deployments(owner: str = Depends(current_owner),
                           deployments: DeploymentService = Depends(_deployments)) -> Any:
    return page([deployment_json(d, deployments) for d in await deployments.for_owner(owner)])


@router.post("/deployments/{deployment_id}/stop", responses=error_responses({404: "No such deployment of this owner"}))
async def stop_deployment(deployment_id: str, owner: str = Depends(current_owner),
                          deployments: DeploymentService = Depends(_deployments),
                          body: StopIn | None = Body(None)) -> Any:
    """Stop a deployment; `{"close_position": true}` also closes its position, else it is left for you."""
    close = body is not None and body.close_position
    try:
        return deployment_json(await deployments.stop(owner, deployment_id, close_position=close), deployments)
    except DeploymentNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no deployment {deployment_id}") from None


# --- wire shapes -----------------------------------------------------------------------------------------------
def order_json(o: PaperOrderRow) -> dict[str, Any]:
    return {
        "id": o.id, "symbol": o.symbol, "side": o.side, "type": o.type, "quantity": o.quantity,
        "limit_price": o.limit_price, "stop_price": o.stop_price, "time_in_force": o.time_in_force,
        "status": o.status, "reason": o.reason, "fill_price": o.fill_price, "fee": o.fee, "taker": o.taker,
        "filled_at": o.filled_at_ms, "expires_at": o.expires_at_ms, "deployment_id": o.deployment_id,
        "created_at": o.created_at_ms, "updated_at": o.updated_at_ms,
    }


def position_json(p: PaperPositionRow) -> dict[str, Any]:
    return {
        "symbol": p.symbol, "deployment_id": p.deployment_id or None,
        "side": "long" if p.quantity > 0 else "short", "quantity": p.quantity,
        "avg_price": p.avg_price, "mark_price": p.mark_price, "notional": abs(p.quantity) * p.mark_price,
        "unrealized_pnl": p.quantity * (p.mark_price - p.avg_price), "opened_at": p.opened_at_ms,
    }


def fill_json(f: PaperFillRow) -> dict[str, Any]:
    return {
        "id": f.id, "order_id": f.order_id, "symbol": f.symbol, "side": f.side, "quantity": f.quantity,
        "price": f.price, "fee": f.fee, "realized_pnl": f.realized_pnl, "time": f.time_ms,
    }


def deployment_json(d: PaperDeploymentRow, deployments: DeploymentService) -> dict[str, Any]:
    trades = deployments.trades(d.id, d.engine_snapshot)
    return {
        "id": d.id, "strategy": d.strategy, "symbol": d.symbol, "interval": d.interval, "params": d.params,
        "cash": d.cash, "size": d.size, "long_only": d.long_only, "status": d.status, "last_bar": d.last_bar_ms,
        "created_at": d.created_at_ms, "stopped_at": d.stopped_at_ms,
        # From the runner where it runs, else its last snapshot (an API process apart from the worker).
        "trades": None if trades is None else [t.as_json() for t in trades],
    }
