"""What `pulse demo` adds for USDT: a local chain (anvil from node_modules) with a mock USDT deployed, accepted as
the chain `local` (1 confirmation: anvil mines each transaction at once), its watcher running, and a demo wallet
funded from the token's owner (a faucet), which the billing page's "Pay from the demo wallet" button sends an
invoice's exact amount from (`POST /dev/usdt/pay`). Without node, anvil or solc the demo logs one line saying so
and offers no USDT; configured chains (`PULSE_USDT_CHAINS`) are left alone."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from marketpulse.onchain.chain import ChainClient
from marketpulse.onchain.devchain import CHAIN_ID, Anvil, Missing
from marketpulse.settings import UsdtChain
from marketpulse.web.assets import node_modules_dir

if TYPE_CHECKING:
    from marketpulse.coordination.lease import PeriodicDuty
    from marketpulse.runtime import Runtime

log = structlog.get_logger(__name__)

CHAIN = "local"
FAUCET_UNITS = 1_000_000 * 10**6  # the demo wallet's USDT: a million


@dataclass
class DemoChain:
    anvil: Anvil
    token: str
    receiving: str
    wallet: str  # the demo wallet: funded by the faucet, pays invoices for the user
    watcher: PeriodicDuty | None = None

    def pay(self, units: int, to: str | None = None) -> str:
        """Send `units` of the mock USDT from the demo wallet (to the receiving address); the tx hash."""
        return self.anvil.transfer(self.token, to or self.receiving, units, sender=self.wallet)

    def balance(self) -> int:
        return self.anvil.token_balance(self.token, self.wallet)

    async def stop(self) -> None:
        if self.watcher is not None:
            with contextlib.suppress(Exception):
                await self.watcher.stop()
        await asyncio.to_thread(self.anvil.stop)


def _start(runtime: Runtime) -> DemoChain:
    anvil = Anvil.start(node_modules_dir(runtime.settings))
    try:
        token = anvil.deploy_token(6)
        receiving, wallet = anvil.accounts[1].lower(), anvil.accounts[2].lower()
        anvil.transfer(token, wallet, FAUCET_UNITS)  # the faucet
    except Exception:
        anvil.stop()
        raise
    return DemoChain(anvil, token, receiving, wallet)


async def start_demo_chain(runtime: Runtime) -> DemoChain | None:
    from marketpulse.onchain.watcher import usdt_watcher

    settings, usdt = runtime.settings, runtime.services.usdt
    if settings.usdt_chains:
        return None
    try:
        chain = await asyncio.to_thread(_start, runtime)
    except Missing as exc:
        log.warning("no local chain for USDT payments in the demo", reason=str(exc))
        print(f"USDT payments are off in this demo: {exc}", flush=True)
        return None
    config = UsdtChain(chain_id=CHAIN_ID, rpc_url=chain.anvil.url, token=chain.token,
                       receiving_address=chain.receiving, confirmations=1)
    settings.usdt_chains = {CHAIN: config}
    usdt.clients[CHAIN] = ChainClient(CHAIN, config)
    usdt.dev_chain = chain
    chain.watcher = usdt_watcher(runtime)
    await chain.watcher.start()
    log.info("demo chain started", url=chain.anvil.url, token=chain.token, wallet=chain.wallet)
    return chain
