"""The process's long-lived services, built once from its Runtime, handed to routes and roles, and shut down.

    runtime.services.paper / .deployments / .paper_clock / .backtests / .accounts / .watchlists / .delivery
                    / .rate_limits / .credits / .signals / .payments / .metering / .usdt / .tax
                    / .portfolio

Built on first use (a `pulse ingest` process never builds them, so it never loads the engine); `Runtime.close`
stops them. HTTP routes get them through FastAPI dependencies (`get_services` and the views' own small ones), and
the worker's paper runner uses the same instances, so a `pulse demo` process has one per-owner lock per account
and the views see the worker's market time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from fastapi import Request

from marketpulse.clock import EventClock

if TYPE_CHECKING:
    from marketpulse.accounts.service import AccountsService
    from marketpulse.backtest.service import BacktestJobs
    from marketpulse.credits.service import CreditLedger
    from marketpulse.delivery.service import DeliveryService
    from marketpulse.onchain.service import UsdtPayments
    from marketpulse.payments.metering import ApiMetering
    from marketpulse.payments.service import PaymentsService
    from marketpulse.portfolio.service import PortfolioService
    from marketpulse.ratelimit.service import ApiRateLimiter
    from marketpulse.rules.service import RulesService
    from marketpulse.runtime import Runtime
    from marketpulse.signals.service import SignalsService
    from marketpulse.tax.service import TaxService
    from marketpulse.trading.paper.deployments import DeploymentService
    from marketpulse.trading.paper.service import PaperTradingService
    from marketpulse.watchlists.service import WatchlistService

log = structlog.get_logger(__name__)

@dataclass
class Services:
    paper: PaperTradingService
    deployments: DeploymentService
    paper_clock: EventClock  # the market's time as paper trading last saw it (falls back to the runtime's clock)
    backtests: BacktestJobs
    accounts: AccountsService
    watchlists: WatchlistService
    delivery: DeliveryService
    rules: RulesService  # alert rules (not the volume-spike alerts)
    rate_limits: ApiRateLimiter
    credits: CreditLedger  # the contract other capabilities charge through, inside their own transactions
    signals: SignalsService  # strategy signals: configs, webhook ingest, subscriptions
    payments: PaymentsService  # Stripe: checkout, portal, webhooks, the grace period
    metering: ApiMetering  # API calls counted per user and month; the excess reported to Stripe
    usdt: UsdtPayments  # USDT invoices paid on-chain (one web3 client per configured chain)
    tax: TaxService  # tax transactions and report jobs
    portfolio: PortfolioService  # connected exchanges and wallets, holdings, snapshots

    @classmethod
    def build(cls, runtime: Runtime) -> Services:
        from marketpulse.accounts.service import AccountsService, limit_storage, user_plan
        from marketpulse.backtest.service import BacktestJobs
        from marketpulse.credits.service import CreditLedger
        from marketpulse.delivery.service import DeliveryService
        from marketpulse.onchain.service import UsdtPayments
        from marketpulse.payments.metering import ApiMetering
        from marketpulse.payments.service import PaymentsService
        from marketpulse.portfolio.service import PortfolioService
        from marketpulse.ratelimit.service import ApiRateLimiter
        from marketpulse.rules.service import RulesService
        from marketpulse.signals.service import SignalsService
        from marketpulse.tax.prices import LibraryPrices
        from marketpulse.tax.service import TaxService
        from marketpulse.trading.paper.deployments import DeploymentService
        from marketpulse.trading.paper.service import PaperConfig, PaperTradingService
        from marketpulse.watchlists.service import WatchlistService

        settings = runtime.settings
        clock = EventClock(runtime.clock)
        paper = PaperTradingService(runtime.sessions, runtime.bus, clock, PaperConfig.from_settings(settings),
                                    plans=user_plan)
        accounts = AccountsService(runtime.sessions, runtime.clock, settings, bus=runtime.bus)
        credits = CreditLedger(runtime.sessions, runtime.clock)
        payments = PaymentsService(runtime.sessions, runtime.clock, settings, accounts, credits)
        return cls(
            paper=paper,
            deployments=DeploymentService(runtime.sessions, paper, history_bars=settings.paper_history_bars),
            paper_clock=clock,
            backtests=BacktestJobs(runtime.sessions, runtime.clock, settings),
            accounts=accounts,
            watchlists=WatchlistService(runtime.sessions, runtime.clock, runtime.bus),
            delivery=DeliveryService(runtime.sessions, runtime.clock, settings, runtime.bus),
            rules=RulesService(runtime.sessions, runtime.bus, runtime.clock),
            rate_limits=ApiRateLimiter(limit_storage(settings.rate_limit_storage, settings.deployment)),
            credits=credits,
            signals=SignalsService(runtime.sessions, runtime.bus, runtime.clock, settings),
            payments=payments,
            metering=ApiMetering(runtime.sessions, runtime.clock, settings, payments.gateway),
            usdt=UsdtPayments(runtime.sessions, runtime.clock, settings, accounts, credits),
            tax=TaxService(runtime.sessions, runtime.clock, LibraryPrices(settings.data_dir / "library")),
            portfolio=PortfolioService(runtime.sessions, runtime.clock, settings, market_clock=clock,
                                       library=LibraryPrices(settings.data_dir / "library")),
        )

    async def close(self) -> None:
        try:
            await self.metering.flush()  # the calls counted since the last flush
        except Exception:
            log.warning("api usage not flushed at shutdown", exc_info=True)
        await self.backtests.close()
        await self.tax.close()
        await self.portfolio.close()
        await self.accounts.close()
        await self.payments.close()
        await self.usdt.close()
        await self.signals.close()
        await self.delivery.close()


def get_services(request: Request) -> Services:
    """FastAPI dependency: the services of the runtime the app was created with."""
    services: Services = request.app.state.runtime.services
    return services
