"""An EVM wallet by address through web3.py: the native coin's and each configured ERC-20's balance, and transfers
in and out (ERC-20 `Transfer` logs; native transfers from the blocks' transactions), a block range at a time.

Gas the wallet paid for a transaction it sent is a `fee` disposal of the native coin (from the receipt).
Native transfers have no log: they are found by reading each block's transactions, which is cheap on a local chain
and a small range, and the reason a sync reads at most `blocks_per_sync` blocks (the cursor resumes there). Internal
transfers (a contract sending the coin) need a tracing node and are not seen; the balance still is.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import FilterParams

from marketpulse.onchain.core import TRANSFER_TOPIC, address_topic
from marketpulse.settings import PortfolioEvmChain

BALANCE_OF = "0x70a08231"  # balanceOf(address)
DECIMALS = "0x313ce567"  # decimals()
RPC_TIMEOUT_S = 10
T = TypeVar("T")


class EvmUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Transfer:
    time_ms: int
    asset: str
    amount: Decimal
    incoming: bool
    tx_hash: str
    log_index: int  # -1 for a native transfer


class EvmWallet:
    def __init__(self, name: str, config: PortfolioEvmChain) -> None:
        self.name, self.config = name, config
        self.w3 = AsyncWeb3(AsyncHTTPProvider(config.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
        self._decimals: dict[str, int] = {}
        self._block_ms: dict[int, int] = {}

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def _ask(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except Exception as exc:
            raise EvmUnavailable(f"{self.name}: the node failed to answer ({type(exc).__name__}: "
                                 f"{str(exc)[:120]})") from exc

    async def check_chain(self) -> None:
        got = await self._ask(self.w3.eth.chain_id)
        if got != self.config.chain_id:
            raise EvmUnavailable(f"{self.name}: the node serves chain {got}, not {self.config.chain_id}")

    async def latest(self) -> int:
        return int(await self._ask(self.w3.eth.block_number))

    async def decimals(self, token: str) -> int:
        if token not in self._decimals:
            raw = await self._ask(self.w3.eth.call({"to": to_checksum_address(token),  # type: ignore[typeddict-item]
                                                    "data": HexStr(DECIMALS)}))
            if len(raw) != 32:
                raise EvmUnavailable(f"{self.name}: {token} answers no decimals(): not a token")
            self._decimals[token] = int.from_bytes(raw, "big")
        return self._decimals[token]

    async def balances(self, address: str) -> dict[str, Decimal]:
        owner = to_checksum_address(address)
        out: dict[str, Decimal] = {}
        wei = await self._ask(self.w3.eth.get_balance(owner))
        if wei:
            out[self.config.native] = Decimal(wei).scaleb(-18)
        for symbol, token in self.config.tokens.items():
            data = HexStr(BALANCE_OF + address_topic(address)[2:])
            raw = await self._ask(self.w3.eth.call({"to": to_checksum_address(token),  # type: ignore[typeddict-item]
                                                    "data": data}))
            units = int.from_bytes(raw, "big") if raw else 0
            if units:
                out[symbol] = Decimal(units).scaleb(-await self.decimals(token))
        return out

    async def block_ms(self, number: int) -> int:
        if number not in self._block_ms:
            block = await self._ask(self.w3.eth.get_block(number))
            self._block_ms[number] = int(block["timestamp"]) * 1000
        return self._block_ms[number]

    async def transfers(self, address: str, first: int, last: int) -> list[Transfer]:
        """Transfers of the wallet in blocks [first, last], in chain order."""
        me = address.lower()
        found: list[tuple[int, int, Transfer]] = []
        for symbol, token in self.config.tokens.items():
            places = await self.decimals(token)
            for incoming in (False, True):
                topics: list[str | None] = [TRANSFER_TOPIC, None, address_topic(me)] if incoming else \
                    [TRANSFER_TOPIC, address_topic(me)]
                params: FilterParams = {"address": to_checksum_address(token), "fromBlock": first, "toBlock": last,
                                        "topics": topics}  # type: ignore[typeddict-item]
                for log in await self._ask(self.w3.eth.get_logs(params)):
                    units = int.from_bytes(bytes(log["data"]), "big")
                    block = int(log["blockNumber"])
                    tx_hash = "0x" + bytes(log["transactionHash"]).hex()
                    found.append((block, int(log["logIndex"]), Transfer(
                        await self.block_ms(block), symbol, Decimal(units).scaleb(-places), incoming, tx_hash,
                        int(log["logIndex"]))))
        for number in range(first, last + 1):
            full = await self._ask(self.w3.eth.get_block(number, full_transactions=True))
            self._block_ms[number] = int(full["timestamp"]) * 1000
            for tx in full["transactions"]:
                if isinstance(tx, bytes) or not tx["value"]:
                    continue
                sender, to = str(tx["from"]).lower(), str(tx.get("to") or "").lower()
                if me not in (sender, to) or sender == to:
                    continue
                found.append((number, -1, Transfer(self._block_ms[number], self.config.native,
                                                   Decimal(int(tx["value"])).scaleb(-18), to == me,
                                                   "0x" + bytes(tx["hash"]).hex(), -1)))
        found.sort(key=lambda f: (f[0], f[1]))
        return [f[2] for f in found]

    async def gas_paid(self, address: str, tx_hash: str) -> Decimal | None:
        """The native coin the wallet paid as gas for a transaction it sent (None when another address sent it)."""
        tx = await self._ask(self.w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
        if str(tx["from"]).lower() != address.lower():
            return None
        receipt = await self._ask(self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        wei = int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice") or tx.get("gasPrice") or 0)
        return Decimal(wei).scaleb(-18) if wei else None
