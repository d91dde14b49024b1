"""A Solana wallet by address through its JSON-RPC: `getBalance` (SOL), `getTokenAccountsByOwner` (SPL tokens,
parsed) and `getSignaturesForAddress` (its activity, newest first, paged with `before`/`until`).

Only balances become holdings here: a signature says a transaction touched the wallet, not what moved (that needs
`getTransaction` per signature), so Solana history is counted and followed by cursor, not yet turned into tax rows.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

TOKEN_PROGRAM = "TokenkegQfeZyiNwAdBpKchAhc2sEtq8SJwrUwVEJuM"
LAMPORTS = 9  # decimals of SOL
PAGE = 1000


class SolanaUnavailable(RuntimeError):
    pass


class SolanaWallet:
    def __init__(self, rpc_url: str, tokens: dict[str, str], client: httpx.AsyncClient | None = None) -> None:
        self.rpc_url, self.tokens = rpc_url, tokens
        self.client = client or httpx.AsyncClient(timeout=10)
        self._owned = client is None

    async def close(self) -> None:
        if self._owned:
            await self.client.aclose()

    async def call(self, method: str, *params: Any) -> Any:
        try:
            resp = await self.client.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                              "params": list(params)})
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SolanaUnavailable(f"solana: the node failed to answer ({type(exc).__name__})") from exc
        if "error" in body:
            raise SolanaUnavailable(f"solana: {method}: {body['error'].get('message', body['error'])}")
        return body.get("result")

    async def balances(self, address: str) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        lamports = (await self.call("getBalance", address, {"commitment": "finalized"}))["value"]
        if lamports:
            out["SOL"] = Decimal(int(lamports)).scaleb(-LAMPORTS)
        accounts = (await self.call("getTokenAccountsByOwner", address, {"programId": TOKEN_PROGRAM},
                                    {"encoding": "jsonParsed", "commitment": "finalized"}))["value"]
        for entry in accounts:
            info = entry["account"]["data"]["parsed"]["info"]
            amount = info["tokenAmount"]
            units = Decimal(int(amount["amount"])).scaleb(-int(amount["decimals"]))
            if units:
                symbol = self.tokens.get(info["mint"], info["mint"][:8])
                out[symbol] = out.get(symbol, Decimal(0)) + units
        return out

    async def new_signatures(self, address: str, until: str | None) -> list[dict[str, Any]]:
        """Signatures newer than `until` (all when None), newest first, paging back with `before`."""
        out: list[dict[str, Any]] = []
        before: str | None = None
        while True:
            options: dict[str, Any] = {"limit": PAGE, "commitment": "finalized"}
            if before:
                options["before"] = before
            if until:
                options["until"] = until
            page = await self.call("getSignaturesForAddress", address, options)
            if not page:  # not "shorter than asked": a node may cap a page lower than `limit`
                return out
            out.extend(page)
            before = page[-1]["signature"]
