"""Every capability's HTTP router, mounted by the app factory. Add one line per capability."""

from __future__ import annotations

from importlib import import_module

from fastapi import APIRouter

# "module:attribute" of each APIRouter; capabilities append their own line.
ROUTERS: list[str] = [
    "marketpulse.api.health:router",
    "marketpulse.api.metrics:router",
    "marketpulse.marketdata.views:router",
    "marketpulse.web.views:router",
    "marketpulse.charts.views:router",
    "marketpulse.detection.views:router",
    "marketpulse.trading.paper.views:router",
    "marketpulse.backtest.views:router",
    "marketpulse.trading.paper.page:router",
    "marketpulse.accounts.views:router",
    "marketpulse.accounts.admin_views:router",
    "marketpulse.accounts.pages:router",
    "marketpulse.watchlists.views:router",
    "marketpulse.accounts.account_views:router",
    "marketpulse.web.account_pages:router",
    "marketpulse.accounts.sso_views:router",
    "marketpulse.delivery.views:router",
    "marketpulse.delivery.dev_views:router",
    "marketpulse.rules.views:router",
    "marketpulse.rules.page:router",
    "marketpulse.credits.views:router",
    "marketpulse.signals.views:webhook_router",
    "marketpulse.signals.views:admin_router",
    "marketpulse.signals.views:router",
    "marketpulse.signals.views:page_router",
    "marketpulse.payments.views:router",
    "marketpulse.onchain.views:router",
    "marketpulse.tax.views:router",
    "marketpulse.tax.views:page_router",
    "marketpulse.portfolio.views:router",
    "marketpulse.portfolio.page:router",
]


def load_routers() -> list[APIRouter]:
    out = []
    for ref in ROUTERS:
        module, attr = ref.split(":")
        out.append(getattr(import_module(module), attr))
    return out
