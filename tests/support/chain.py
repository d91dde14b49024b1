"""A real local EVM chain for tests: `marketpulse.onchain.devchain` (the one `pulse demo` runs: anvil from npm
`@foundry-rs/anvil` on a free port, a mock USDT compiled at test time with npm `solc`), skipping the test when node
or the npm packages are missing.

    chain = Anvil.start()                        # a fresh chain; chain.stop() ends it
    token = chain.deploy_token(decimals=6)       # a mock USDT owned by account 0 (all the supply)
    tx = chain.transfer(token, to, units)        # mined at once (anvil mines every transaction)
    chain.mine(11)                               # bury it under more blocks
    snap = chain.snapshot(); chain.revert(snap)  # a reorganisation: everything after the snapshot is gone
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketpulse.onchain import devchain
from marketpulse.onchain.devchain import CHAIN_ID, Missing

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"

__all__ = ["CHAIN_ID", "NODE_MODULES", "Anvil", "json_chain"]


class Anvil(devchain.Anvil):
    @classmethod
    def start(cls, node_modules: Path = NODE_MODULES, *, accounts: int = 6) -> Anvil:  # type: ignore[override]
        try:
            devchain.anvil_binary(node_modules)
            devchain.token_bytecode(node_modules)  # compiled once per session, before the chain starts
        except Missing as exc:
            pytest.skip(str(exc))
        chain = devchain.Anvil.start(node_modules, accounts=accounts)
        return cls(chain.process, chain.url, chain.accounts, chain.node_modules)


def json_chain(name: str, url: str, token: str, receiving: str, confirmations: int) -> str:
    """`PULSE_USDT_CHAINS` for one chain."""
    return json.dumps({name: {"chain_id": CHAIN_ID, "rpc_url": url, "token": token, "receiving_address": receiving,
                              "confirmations": confirmations}})
