"""A chain's JSON-RPC, through web3.py: what the USDT service asks a node (receipts, logs, blocks, decimals).

Every answer is turned into plain values (`core.LogEntry`, ints) here, so the service and the pure rules never
see web3's types.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import TransactionNotFound
from web3.types import FilterParams, LogReceipt

from marketpulse.onchain.core import TRANSFER_TOPIC, LogEntry, address_topic
from marketpulse.settings import UsdtChain

DECIMALS_CALL = "0x313ce567"  # decimals()
RPC_TIMEOUT_S = 10
T = TypeVar("T")


class ChainUnavailable(RuntimeError):
    """The node can't be reached, or it serves another chain than the settings name."""


@dataclass(frozen=True)
class Receipt:
    succeeded: bool
    block_number: int
    logs: list[LogEntry]


def _hex(value: bytes | str) -> str:
    return value.lower() if isinstance(value, str) else "0x" + bytes(value).hex()


def _entry(log: LogReceipt) -> LogEntry:
    return LogEntry(address=str(log["address"]).lower(), topics=tuple(_hex(t) for t in log["topics"]),
                    data=_hex(log["data"]), tx_hash=_hex(log["transactionHash"]),
                    block_number=int(log["blockNumber"]))


class ChainClient:
    def __init__(self, name: str, config: UsdtChain) -> None:
        self.name = name
        self.config = config
        self.w3 = AsyncWeb3(AsyncHTTPProvider(config.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
        self._decimals: int | None = None
        self._chain_checked = False

    async def _ask(self, call: Awaitable[T]) -> T:
        """One JSON-RPC call; a node that fails to answer is ChainUnavailable (a 503), never a 500."""
        try:
            return await call
        except TransactionNotFound:
            raise
        except Exception as exc:
            raise ChainUnavailable(f"{self.name}: the node failed to answer ({type(exc).__name__})") from exc

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def check_chain(self) -> None:
        """Refuse a node of another chain (a misconfigured URL must not accept foreign transfers)."""
        if self._chain_checked:
            return
        got = await self._ask(self.w3.eth.chain_id)
        if got != self.config.chain_id:
            raise ChainUnavailable(f"{self.name}: the node serves chain {got}, not {self.config.chain_id}")
        self._chain_checked = True

    async def decimals(self) -> int:
        """The token's decimals, read from the contract once (6 on most chains, 18 for BNB Chain's USDT)."""
        if self._decimals is None:
            await self.check_chain()
            call = {"to": to_checksum_address(self.config.token), "data": HexStr(DECIMALS_CALL)}
            raw = await self._ask(self.w3.eth.call(call))  # type: ignore[arg-type]
            if len(raw) != 32:
                raise ChainUnavailable(f"{self.name}: {self.config.token} answers no decimals(): not a token")
            self._decimals = int.from_bytes(raw, "big")
        return self._decimals

    async def latest(self) -> int:
        await self.check_chain()
        return int(await self._ask(self.w3.eth.block_number))

    async def receipt(self, tx_hash: str) -> Receipt | None:
        """The mined transaction's receipt; None while it is unknown or not mined (or reorganised away)."""
        await self.check_chain()
        try:
            r = await self._ask(self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        return Receipt(succeeded=r["status"] == 1, block_number=int(r["blockNumber"]),
                       logs=[_entry(log) for log in r["logs"]])

    async def block_time_ms(self, number: int) -> int:
        block = await self._ask(self.w3.eth.get_block(number))
        return int(block["timestamp"]) * 1000

    async def transfers_in(self, from_block: int, to_block: int) -> list[LogEntry]:
        """The token's Transfer logs to the receiving address in [from_block, to_block]."""
        params: FilterParams = {
            "address": to_checksum_address(self.config.token), "fromBlock": from_block, "toBlock": to_block,
            "topics": [TRANSFER_TOPIC, None, address_topic(self.config.receiving_address)],  # type: ignore[list-item]
        }
        return [_entry(log) for log in await self._ask(self.w3.eth.get_logs(params))]
