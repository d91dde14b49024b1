"""A real local EVM chain: anvil (npm `@foundry-rs/anvil`, its binary inside the package) on a free port, and a
mock USDT compiled on the spot with npm `solc` (nothing built is committed). `pulse demo` runs one so a user can
pay USDT invoices end to end; the tests run one too (`tests/support/chain.py`).

    chain = Anvil.start(node_modules)            # a fresh chain; chain.stop() ends it
    token = chain.deploy_token(decimals=6)       # a mock USDT owned by account 0 (all the supply)
    tx = chain.transfer(token, to, units)        # mined at once (anvil mines every transaction)

`Missing` is raised when node, anvil or solc isn't installed (`npm ci`), naming what is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

CHAIN_ID = 31337

TOKEN_SOURCE = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

contract MockUSDT {
    uint8 public immutable decimals;
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint8 places) {
        decimals = places;
        balanceOf[msg.sender] = 1e30;
        emit Transfer(address(0), msg.sender, 1e30);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance too low");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}
"""

COMPILE = """
const solc = require(process.argv[1] + '/solc');
const input = {language: 'Solidity', sources: {'MockUSDT.sol': {content: require('fs').readFileSync(0, 'utf8')}},
               settings: {outputSelection: {'*': {'*': ['evm.bytecode.object']}}}};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
if ((out.errors || []).some(e => e.severity === 'error')) {
  console.error(JSON.stringify(out.errors)); process.exit(1);
}
process.stdout.write(out.contracts['MockUSDT.sol'].MockUSDT.evm.bytecode.object);
"""


class Missing(RuntimeError):
    """A piece the local chain needs is not installed; the message says which and how to get it."""


def anvil_binary(node_modules: Path) -> Path:
    for path in sorted(node_modules.glob("@foundry-rs/anvil-*/bin/anvil")):
        return path
    raise Missing(f"npm @foundry-rs/anvil is not installed in {node_modules} (npm ci)")


@cache
def token_bytecode(node_modules: Path) -> str:
    """The mock USDT's creation code, compiled now by solc-js (a few seconds, once per process)."""
    node = shutil.which("node")
    if node is None:
        raise Missing("node is not installed")
    if not (node_modules / "solc").is_dir():
        raise Missing(f"npm solc is not installed in {node_modules} (npm ci)")
    done = subprocess.run([node, "-e", COMPILE, str(node_modules)], input=TOKEN_SOURCE, capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _word(value: int | str) -> str:
    if isinstance(value, str):  # an address
        return value[2:].lower().rjust(64, "0")
    return f"{value:064x}"


@dataclass
class Anvil:
    process: subprocess.Popen[bytes]
    url: str
    accounts: list[str]
    node_modules: Path

    @classmethod
    def start(cls, node_modules: Path, *, accounts: int = 6) -> Anvil:
        port = _free_port()
        process = subprocess.Popen([str(anvil_binary(node_modules)), "--host", "127.0.0.1", "--port", str(port),
                                    "--chain-id", str(CHAIN_ID), "--silent", "--accounts", str(accounts)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                found = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_accounts"},
                                   timeout=2).json()["result"]
                return cls(process, url, found, node_modules)
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    raise RuntimeError("anvil did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def rpc(self, method: str, *params: Any) -> Any:
        body = httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                          timeout=30).json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    def send(self, sender: str, to: str | None, data: str, gas: int | None = None) -> str:
        """A transaction from an unlocked account; its hash (mined at once). With `gas`, no estimate: a call that
        reverts is still mined (as a failed transaction)."""
        tx: dict[str, Any] = {"from": sender, "data": data}
        if to is not None:
            tx["to"] = to
        if gas is not None:
            tx["gas"] = hex(gas)
        tx_hash: str = self.rpc("eth_sendTransaction", tx)
        return tx_hash

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        found: dict[str, Any] = self.rpc("eth_getTransactionReceipt", tx_hash)
        return found

    def deploy_token(self, decimals: int = 6) -> str:
        """A mock USDT (or a look-alike: the same code at another address); all its supply is account 0's."""
        tx_hash = self.send(self.accounts[0], None, "0x" + token_bytecode(self.node_modules) + _word(decimals))
        address: str = self.receipt(tx_hash)["contractAddress"]
        return address.lower()

    def transfer(self, token: str, to: str, units: int, sender: str | None = None, gas: int | None = None) -> str:
        data = "0xa9059cbb" + _word(to) + _word(units)  # transfer(address,uint256)
        return self.send(sender or self.accounts[0], token, data, gas)

    def token_balance(self, token: str, owner: str) -> int:
        return int(self.rpc("eth_call", {"to": token, "data": "0x70a08231" + _word(owner)}, "latest"), 16)

    def mine(self, blocks: int = 1, *, at_s: int | None = None) -> None:
        if at_s is not None:
            self.rpc("evm_setNextBlockTimestamp", at_s)
        self.rpc("anvil_mine", hex(blocks))

    def set_next_block_time(self, at_s: int) -> None:
        self.rpc("evm_setNextBlockTimestamp", at_s)

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def now_ms(self) -> int:
        """The newest block's time."""
        return int(self.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16) * 1000

    def snapshot(self) -> str:
        snap: str = self.rpc("evm_snapshot")
        return snap

    def revert(self, snap: str) -> None:
        assert self.rpc("evm_revert", snap) is True
