"""What `pulse demo` adds for the portfolio: the fake Binance (`devexchange`) on a free local port with a demo
account (balances, trades, a deposit, a withdrawal and funding before the replay's start), used as `binance` by
every connection; and the demo chain's wallet (when the demo runs its local chain) followable as the EVM chain
`local` with its mock USDT. The /portfolio page shows the demo key and wallet address to connect with.
Configured exchange URLs or EVM chains (`PULSE_PORTFOLIO_*`) are left alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from marketpulse.portfolio.devexchange import Account, FakeCcxtExchange, deposit, funding_income, my_trade, withdrawal
from marketpulse.settings import PortfolioEvmChain

if TYPE_CHECKING:
    from marketpulse.onchain.demo import DemoChain
    from marketpulse.runtime import Runtime

log = structlog.get_logger(__name__)

DEMO_KEY = "demo-read-only-key-0001"
DEMO_SECRET = "demo-read-only-secret-not-a-real-one"  # the demo exchange is local: this is no secret
H = 3_600_000
DAY = 24 * H


@dataclass(frozen=True)
class DemoHint:
    exchange: str
    api_key: str
    secret: str
    chain: str | None
    wallet: str | None


def demo_account(before_ms: int) -> Account:
    """A trader's account: USDT deposited, BTC and ETH bought over the previous weeks, some sold, BTC withdrawn."""
    t = before_ms - 30 * DAY
    trades = {
        "BTCUSDT": [my_trade(1, "BTCUSDT", t + 2 * DAY, "110000", "0.2", buyer=True, commission="22"),
                    my_trade(2, "BTCUSDT", t + 9 * DAY, "114000", "0.1", buyer=True, commission="11.4"),
                    my_trade(3, "BTCUSDT", t + 20 * DAY, "121000", "0.05", buyer=False, commission="6.05")],
        "ETHUSDT": [my_trade(4, "ETHUSDT", t + 3 * DAY, "4200", "3", buyer=True, commission="12.6"),
                    my_trade(5, "ETHUSDT", t + 15 * DAY, "4500", "1", buyer=False, commission="4.5")],
    }
    return Account(
        DEMO_KEY, DEMO_SECRET, balances={"BTC": "0.2", "ETH": "2", "USDT": "28316.33"}, trades=trades,
        deposits=[deposit("demo-dep-1", "USDT", "60000", t, "0x" + "d1" * 32)],
        withdrawals=[withdrawal("demo-wd-1", "BTC", "0.0495", "0.0005", t + 25 * DAY, "0x" + "e1" * 32)],
        incomes=[funding_income(i, "BTCUSDT", "3.2" if i % 3 else "-1.1", t + i * 8 * H) for i in range(1, 40)])


def start_demo_portfolio(runtime: Runtime, chain: DemoChain | None, market_start_ms: int) -> DemoHint | None:
    settings, service = runtime.settings, runtime.services.portfolio
    if settings.portfolio_exchange_urls:
        return None
    exchange = FakeCcxtExchange()
    for base in ("BTC", "ETH"):
        exchange.add_market(base, "USDT")
    exchange.add_account(demo_account(market_start_ms))
    exchange.start()
    settings.portfolio_exchange_urls = {"binance": exchange.url}
    service.dev_exchange = exchange
    name = wallet = None
    if chain is not None and not settings.portfolio_evm_chains:
        from marketpulse.onchain.devchain import CHAIN_ID

        name, wallet = "local", chain.wallet
        settings.portfolio_evm_chains = {name: PortfolioEvmChain(chain_id=CHAIN_ID, rpc_url=chain.anvil.url,
                                                                 tokens={"USDT": chain.token})}
    hint = DemoHint("binance", DEMO_KEY, DEMO_SECRET, name, wallet)
    service.demo_hint = hint
    log.info("demo exchange started", url=exchange.url, wallet=wallet)
    return hint
