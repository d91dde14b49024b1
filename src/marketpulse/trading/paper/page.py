"""`/paper`: the paper-trading page (account, positions, orders, fills, deployments, order and deploy forms).

The strategy registry and each strategy's parameters are rendered server-side, so the deploy form is complete
without JavaScript's help; the account's current state rides along as bootstrap JSON so the page paints at once.
`paper.js` then polls the REST API (`/api/v1/paper/...`) every 2 s — polling, not Socket.IO: the realtime bridge
relays market topics only, and a 2 s poll of five small endpoints is cheap and survives reconnects by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from marketpulse.marketdata.intervals import Interval
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.services import get_services
from marketpulse.strategies import REGISTRY, Param, Strategy
from marketpulse.trading.owners import current_owner
from marketpulse.trading.paper.orders import OrderStatus, OrderType, Side, TimeInForce
from marketpulse.trading.paper.views import DeploymentIn, deployment_json, fill_json, order_json, position_json

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC_DIR = Path(__file__).parent / "static"

REFRESH_MS = 2000
FILLS_SHOWN = 50
# The one interval set the API accepts, so the form can't offer one it would refuse.
INTERVALS: tuple[str, ...] = tuple(Interval)
DEFAULT_INTERVAL = DeploymentIn.model_fields["interval"].default
DEFAULT_SIZE = DeploymentIn.model_fields["size"].default


@dataclass(frozen=True)
class ParamField:
    """One strategy parameter as a form control: which input, its bounds, and its default pre-filled."""

    name: str
    kind: str  # "int" | "float" | "bool" | "str": paper.js converts the input's text back to this
    default: Any
    help: str
    low: float | None
    high: float | None
    step: float | str | None
    choices: tuple[Any, ...] | None

    @classmethod
    def of(cls, p: Param) -> ParamField:
        # Floats accept any decimals ("any"); ints step by 1 so the browser's spinner stays on integers.
        step: float | str | None = "any" if p.kind is float else 1 if p.kind is int else None
        return cls(p.name, p.kind.__name__, p.default, p.help, p.low, p.high, step, p.choices)


@dataclass(frozen=True)
class StrategyForm:
    name: str
    description: str
    params: tuple[ParamField, ...]

    @classmethod
    def of(cls, strategy: type[Strategy]) -> StrategyForm:
        return cls(strategy.name, strategy.description, tuple(ParamField.of(p) for p in strategy.params))


def strategy_forms() -> list[StrategyForm]:
    return [StrategyForm.of(REGISTRY[name]) for name in sorted(REGISTRY)]


async def _snapshot(request: Request, owner: str) -> dict[str, Any]:
    """What the page shows, in the API's wire shapes, so paper.js renders the first paint and each poll alike."""
    services = get_services(request)
    paper, deployments = services.paper, services.deployments
    return {
        "account": await paper.account(owner),
        "positions": [position_json(p) for p in await paper.positions(owner)],
        "orders": [order_json(o) for o in await paper.orders(owner, OrderStatus.OPEN.value)],
        "fills": [fill_json(f) for f in await paper.fills(owner, FILLS_SHOWN)],
        "deployments": [deployment_json(d, deployments) for d in await deployments.for_owner(owner)],
    }


def known_symbols(request: Request) -> list[str]:
    """Symbols in the live market table, for the symbol fields' suggestions (none before the first tickers)."""
    feed: MarketFeed | None = getattr(request.app.state, "market_feed", None)
    return sorted({row["symbol"] for row in feed.snapshot()}) if feed is not None else []


def signin_redirect(request: Request) -> RedirectResponse:
    """Where a signed-out visitor of a personal page goes: the sign-in page, then back here."""
    return RedirectResponse(f"/signin?{urlencode({'next': request.url.path})}", status.HTTP_303_SEE_OTHER)


@router.get("/paper", response_class=HTMLResponse)
async def paper_page(request: Request) -> Response:
    try:
        owner = await current_owner(request, None)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_401_UNAUTHORIZED:
            raise
        return signin_redirect(request)
    bootstrap = {"refreshMs": REFRESH_MS, "fillsShown": FILLS_SHOWN, "snapshot": await _snapshot(request, owner)}
    context = {
        "bootstrap": bootstrap, "strategies": strategy_forms(), "intervals": INTERVALS,
        "default_interval": DEFAULT_INTERVAL, "default_size": DEFAULT_SIZE, "symbols": known_symbols(request),
        "sides": [s.value for s in Side],
        "order_types": [t.value for t in OrderType], "tifs": [t.value for t in TimeInForce],
    }
    return templates.TemplateResponse(request, "paper.html", context)


@router.get("/paper/static/paper.js")
async def paper_js() -> FileResponse:
    # no-cache: revalidated on each load (ETag), so a deploy's new script is never mixed with an old page.
    return FileResponse(STATIC_DIR / "paper.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})
