"""`/`: the live dashboard (the page carries the current table so it paints before Socket.IO connects), and
`/admin`: the admin console's page (what it shows comes from the admin API, which checks the administrator)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from marketpulse.accounts.admin_views import admin_address
from marketpulse.realtime.market_feed import MarketFeed

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

ALERTS_ON_LOAD = 50


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> HTMLResponse:
    feed: MarketFeed = request.app.state.market_feed
    bootstrap = {
        "rows": feed.snapshot(),
        "alertsUrl": f"/api/v1/volume-alerts?limit={ALERTS_ON_LOAD}",
        "renderIntervalMs": 200,
    }
    return templates.TemplateResponse(request, "dashboard.html", {"bootstrap": bootstrap})


@router.get("/admin", response_class=HTMLResponse, dependencies=[Depends(admin_address)])
async def admin_console(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "admin.html", {}, headers={"Cache-Control": "no-store"})
