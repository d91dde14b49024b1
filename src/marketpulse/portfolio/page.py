"""`/portfolio`: allocation chart, value over time with the BTC benchmark, holdings with cost basis and P&L, and the
connections (status, last sync, errors) with forms to connect an exchange, a wallet or paper trading.

The page holds no data and no inline script (the CSP forbids it): `portfolio.js` reads the JSON API with the
browser's cookies, draws the allocation as SVG and the history with `lightweight-charts` (npm, /vendor).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from marketpulse.web.account_pages import render

router = APIRouter(include_in_schema=False)


@router.get("/portfolio", response_class=HTMLResponse)
async def portfolio_page(request: Request) -> HTMLResponse:
    runtime = request.app.state.runtime
    settings = runtime.settings
    demo = runtime.services.portfolio.demo_hint if settings.env == "dev" else None
    return render("Portfolio", template="portfolio.html", scripts=("portfolio.js",), narrow=False,
                  chains=list(settings.portfolio_evm_chains), solana=bool(settings.portfolio_solana_rpc_url),
                  demo=demo)
