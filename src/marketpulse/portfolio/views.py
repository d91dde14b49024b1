"""Portfolio over HTTP; every route needs a signed-in user and sees that user's accounts only (another user's
account id answers 404). API keys are write-only: stored sealed, shown masked, never returned.

    GET    /api/v1/portfolio                               total, by asset, by account/chain, by category, P&L
    GET    /api/v1/portfolio/history?from=&to=&interval=   hourly snapshots (daily past 90 days) + performance
    GET    /api/v1/portfolio/accounts                      connections with their status (last sync, error)
    POST   /api/v1/portfolio/accounts                      connect an exchange (read-only key), wallet or paper
    GET    /api/v1/portfolio/accounts/{account_id}
    POST   /api/v1/portfolio/accounts/{account_id}/sync    sync now (202)
    DELETE /api/v1/portfolio/accounts/{account_id}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import Principal
from marketpulse.accounts.views import current_user, require_scope
from marketpulse.api.pages import Page, page
from marketpulse.marketdata.intervals import Interval
from marketpulse.portfolio.service import Connect, Invalid, PortfolioService, Unavailable
from marketpulse.portfolio.tables import PortfolioAccountRow
from marketpulse.services import Services, get_services
from marketpulse.times import parse_time_ms as parse_time

router = APIRouter(prefix="/api/v1/portfolio", tags=["portfolio"],
                   responses={**UNAUTHORIZED, 403: {"description": "The account or API key may not"}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such account of yours"}}
MAX_POINTS = 5000


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["exchange", "evm", "solana", "paper"]
    name: str = Field(min_length=1, max_length=64, description="your label; the `account` of its tax transactions")
    exchange: str | None = Field(None, max_length=32, description="exchange: the ccxt id (binance…)")
    api_key: str | None = Field(None, max_length=256, description="exchange: a read-only API key (stored sealed)")
    secret: str | None = Field(None, max_length=256, description="exchange: its secret (stored sealed)")
    chain: str | None = Field(None, max_length=32, description="evm: a configured chain name")
    address: str | None = Field(None, max_length=64, description="evm or solana: the wallet's address")


class AccountOut(BaseModel):
    id: str
    kind: str
    name: str
    exchange: str | None
    chain: str | None
    address: str | None
    api_key: str | None = Field(description="the key masked (first and last 4 characters); never the key")
    status: str = Field(description="pending, syncing, ok or error")
    last_sync_ms: int | None
    last_error: str | None
    transactions: int = Field(description="transactions synced into the tax history so far")
    created_at_ms: int


class AssetOut(BaseModel):
    asset: str
    amount: str
    price_usd: float | None = Field(description="null: no market price known (valued 0, listed in `unpriced`)")
    value_usd: float
    share: float = Field(description="of the total, 0..1")
    category: str
    cost_basis_usd: float | None
    unrealized_pnl_usd: float | None


class SliceOut(BaseModel):
    key: str
    label: str
    value_usd: float
    share: float


class PortfolioOut(BaseModel):
    as_of_ms: int
    total_usd: float
    cost_basis_usd: float
    unrealized_pnl_usd: float
    by_asset: list[AssetOut]
    by_account: list[SliceOut]
    by_chain: list[SliceOut]
    by_category: list[SliceOut]
    unpriced: list[str]
    accounts: list[AccountOut]


class PointOut(BaseModel):
    time_ms: int
    value_usd: float
    flow_usd: float = Field(description="net deposits since the previous point (not performance)")
    btc_usd: float | None
    growth: float = Field(description="time-weighted index, 1 at the first point")
    benchmark_usd: float | None = Field(description="the first point's value held in BTC instead")


class PerformanceOut(BaseModel):
    time_weighted_return: float | None
    money_weighted_return: float | None
    max_drawdown: float | None
    btc_return: float | None
    excess_vs_btc: float | None


class HistoryOut(BaseModel):
    interval: str
    points: list[PointOut]
    performance: PerformanceOut


async def signed_in(request: Request, principal: Principal = Depends(current_user)) -> Principal:
    require_scope(request, principal)
    return principal


def get_portfolio(services: Services = Depends(get_services)) -> PortfolioService:
    return services.portfolio


def _invalid(where: str, field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": (where, field), "type": "value_error", "msg": message, "input": None}])


def account_out(row: PortfolioAccountRow) -> AccountOut:
    return AccountOut(id=row.id, kind=row.kind, name=row.name, exchange=row.exchange, chain=row.chain,
                      address=row.address, api_key=row.key_hint, status=row.status, last_sync_ms=row.last_sync_ms,
                      last_error=row.last_error, transactions=row.transactions or 0, created_at_ms=row.created_at_ms)


def _share(part: float, total: float) -> float:
    return round(part / total, 6) if total > 0 else 0.0


@router.get("", response_model=PortfolioOut)
async def portfolio(principal: Principal = Depends(signed_in),
                    service: PortfolioService = Depends(get_portfolio)) -> PortfolioOut:
    """The portfolio now: every connected account's holdings at market prices, unrealized P&L against the cost
    basis of the tax history (FIFO lots)."""
    view = await service.view(principal.user.id)
    v = view.valuation
    total = v.total_usd
    by_id = {a.id: a for a in view.accounts}
    chains: dict[str, float] = {}
    for account_id, worth in v.by_account.items():
        a = by_id.get(account_id)
        if a is not None:
            key = a.chain or a.exchange or a.kind
            chains[key] = chains.get(key, 0.0) + worth
    return PortfolioOut(
        as_of_ms=view.as_of_ms, total_usd=round(total, 2), cost_basis_usd=round(v.cost_basis_usd, 2),
        unrealized_pnl_usd=round(v.unrealized_pnl_usd, 2),
        by_asset=[AssetOut(asset=line.asset, amount=str(line.amount), price_usd=line.price_usd,
                           value_usd=round(line.value_usd, 2), share=_share(line.value_usd, total),
                           category=line.category,
                           cost_basis_usd=None if line.cost_basis_usd is None else round(line.cost_basis_usd, 2),
                           unrealized_pnl_usd=None if line.unrealized_pnl_usd is None
                           else round(line.unrealized_pnl_usd, 2)) for line in v.by_asset],
        by_account=[SliceOut(key=a.id, label=a.name, value_usd=round(v.by_account.get(a.id, 0.0), 2),
                             share=_share(v.by_account.get(a.id, 0.0), total)) for a in view.accounts],
        by_chain=[SliceOut(key=k, label=k, value_usd=round(w, 2), share=_share(w, total))
                  for k, w in sorted(chains.items(), key=lambda kv: -kv[1])],
        by_category=[SliceOut(key=k, label=k, value_usd=round(w, 2), share=_share(w, total))
                     for k, w in sorted(v.by_category.items(), key=lambda kv: -kv[1])],
        unpriced=v.unpriced, accounts=[account_out(a) for a in view.accounts])


HISTORY_INVALID: dict[int | str, dict[str, Any]] = {422: {
    "description": "A bad `from`, `to` or `interval` (named), or `from` not before `to`",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}}


@router.get("/history", response_model=HistoryOut, responses=HISTORY_INVALID)
async def history(
    principal: Principal = Depends(signed_in), service: PortfolioService = Depends(get_portfolio),
    start: Annotated[str | None, Query(alias="from", description="ISO 8601 or epoch ms; default: `to` − 30 days")]
    = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601 or epoch ms; default: now")] = None,
    interval: Annotated[str, Query(description="1h, 4h, 1d … (the API's intervals, 1h or coarser)")] = "1h",
) -> HistoryOut:
    """Value over time from the hourly snapshots (one a day past 90 days), each interval's last; performance over
    the range: time-weighted return (deposits and withdrawals are not performance), money-weighted return, max
    drawdown, and BTC's return over the same range."""
    try:
        step = Interval.parse(interval).ms
    except ValueError as exc:
        raise _invalid("query", "interval", str(exc)) from None
    if step < 3_600_000:
        raise _invalid("query", "interval", "snapshots are hourly: 1h or coarser")
    now = service.market_clock.now_ms()
    try:
        end_ms = parse_time(end) if end is not None else now + 1
    except ValueError as exc:
        raise _invalid("query", "to", str(exc)) from None
    try:
        start_ms = parse_time(start) if start is not None else end_ms - 30 * 86_400_000
    except ValueError as exc:
        raise _invalid("query", "from", str(exc)) from None
    if start_ms >= end_ms:
        raise _invalid("query", "from", "`from` must be before `to`")
    if (end_ms - start_ms) // step > MAX_POINTS:
        raise _invalid("query", "interval", f"more than {MAX_POINTS} points: choose a coarser interval")
    found = await service.history(principal.user.id, start_ms, end_ms, step)
    perf = found.performance
    return HistoryOut(
        interval=interval,
        points=[PointOut(time_ms=p.time_ms, value_usd=round(p.value_usd, 2), flow_usd=round(p.flow_usd, 2),
                         btc_usd=p.btc_usd, growth=perf.growth[i] if i < len(perf.growth) else 1.0,
                         benchmark_usd=perf.benchmark[i] if i < len(perf.benchmark) else None)
                for i, p in enumerate(found.points)],
        performance=PerformanceOut(time_weighted_return=perf.time_weighted_return,
                                   money_weighted_return=perf.money_weighted_return,
                                   max_drawdown=perf.max_drawdown, btc_return=perf.btc_return,
                                   excess_vs_btc=perf.excess_vs_btc))


@router.get("/accounts", response_model=Page[AccountOut])
async def list_accounts(principal: Principal = Depends(signed_in),
                        service: PortfolioService = Depends(get_portfolio)) -> Page[AccountOut]:
    """Your connections and their status: last sync, the last error."""
    return page([account_out(a) for a in await service.accounts(principal.user.id)])


CONNECT_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "A bad field (named): unknown exchange or chain, a bad address, a key the exchange refuses "
                         "or one that can trade or withdraw, a name already used",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}},
    503: {"description": "The exchange could not be asked to check the key; try again"},
}


@router.post("/accounts", response_model=AccountOut, status_code=status.HTTP_201_CREATED, responses=CONNECT_ERRORS)
async def connect(body: AccountIn, principal: Principal = Depends(signed_in),
                  service: PortfolioService = Depends(get_portfolio)) -> AccountOut:
    """Connect an exchange (ccxt id and a read-only API key: refused when it can trade or withdraw), an EVM wallet
    on a configured chain, a Solana wallet, or paper trading; its first sync starts at once."""
    spec = Connect(kind=body.kind, name=body.name, exchange=body.exchange, api_key=body.api_key, secret=body.secret,
                   chain=body.chain, address=body.address)
    try:
        row = await service.connect(principal.user.id, spec)
    except Invalid as exc:
        raise _invalid("body", exc.field, exc.message) from None
    except Unavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
    return account_out(row)


@router.get("/accounts/{account_id}", response_model=AccountOut, responses=NOT_FOUND)
async def get_account(account_id: str, principal: Principal = Depends(signed_in),
                      service: PortfolioService = Depends(get_portfolio)) -> AccountOut:
    row = await service.account(principal.user.id, account_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no account {account_id}")
    return account_out(row)


@router.post("/accounts/{account_id}/sync", response_model=AccountOut, status_code=status.HTTP_202_ACCEPTED,
             responses=NOT_FOUND)
async def sync(account_id: str, principal: Principal = Depends(signed_in),
               service: PortfolioService = Depends(get_portfolio)) -> AccountOut:
    """Sync now (in the background; the account's status says when it is done). A sync already running is kept."""
    row = await service.account(principal.user.id, account_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no account {account_id}")
    service.start_sync(principal.user.id, account_id)
    return account_out(row)


@router.delete("/accounts/{account_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=NOT_FOUND)
async def remove(account_id: str, principal: Principal = Depends(signed_in),
                 service: PortfolioService = Depends(get_portfolio)) -> Response:
    """Forget the connection, its sealed keys and holdings (transactions already synced stay in the tax history)."""
    if not await service.remove(principal.user.id, account_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no account {account_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
