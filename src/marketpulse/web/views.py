"""`/`: the live dashboard (the page carries the current table, as the visitor's plan sees it (session cookie;
anonymous: free), so it paints before Socket.IO connects, and the plan's live figures for the batch countdown),
`/admin`: the admin console's page (what it shows comes from the admin API, which checks the administrator), and
the API's documentation, `/docs` (Swagger UI) and `/redoc` (ReDoc), both from npm packages served at /vendor, so
they work with no internet (no CDN, no inline script: the CSP's docs policy allows only this origin)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from marketpulse.accounts.admin_views import admin_address
from marketpulse.accounts.views import caller_plan
from marketpulse.realtime.market_feed import MarketFeed
from marketpulse.realtime.tiers import plan_of, tier_of

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

ALERTS_ON_LOAD = 100  # spikes and their updates: the panel groups them, the count is every stored one


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> HTMLResponse:
    feed: MarketFeed = request.app.state.market_feed
    plan = await caller_plan(request)
    tier = tier_of(plan)
    bootstrap = {
        "rows": tier.rows(feed.snapshot()),
        "tier": tier.describe(plan_of(plan), request.app.state.runtime.clock.now_ms()),
        "alertsUrl": f"/api/v1/volume-alerts?limit={ALERTS_ON_LOAD}",
        "renderIntervalMs": 200,
    }
    return templates.TemplateResponse(request, "dashboard.html", {"bootstrap": bootstrap})


@router.get("/admin", response_class=HTMLResponse, dependencies=[Depends(admin_address)])
async def admin_console(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "admin.html", {}, headers={"Cache-Control": "no-store"})


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "docs.html", {"title": "API reference", "openapi_url":
                                                             request.app.openapi_url})


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "redoc.html", {"title": "API reference", "openapi_url":
                                                              request.app.openapi_url})
