"""A fake Solana JSON-RPC node on 127.0.0.1:<port>: `getBalance`, `getTokenAccountsByOwner` (jsonParsed) and
`getSignaturesForAddress` (newest first, `limit` capped at `max_limit`, `before` and `until`), in the shapes a real
node answers; unknown methods answer JSON-RPC error -32601.

    node = FakeSolana(); node.wallets[address] = Wallet(lamports=..., tokens={mint: (amount, decimals)})
    node.add_signature(address, sig, slot, block_time_s)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOT = 250_000_000


@dataclass
class Wallet:
    lamports: int = 0
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)  # mint → (raw amount, decimals)
    signatures: list[dict[str, Any]] = field(default_factory=list)  # newest first


class FakeSolana:
    def __init__(self, max_limit: int = 1000) -> None:
        self.max_limit = max_limit
        self.wallets: dict[str, Wallet] = {}
        self.calls: list[tuple[str, list[Any]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_signature(self, address: str, signature: str, slot: int, block_time_s: int) -> None:
        wallet = self.wallets.setdefault(address, Wallet())
        wallet.signatures.insert(0, {"signature": signature, "slot": slot, "err": None, "memo": None,
                                     "blockTime": block_time_s, "confirmationStatus": "finalized"})

    @contextmanager
    def running(self) -> Iterator[FakeSolana]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, method: str, params: list[Any]) -> Any:
        self.calls.append((method, params))
        context = {"apiVersion": "2.0.15", "slot": SLOT}
        wallet = self.wallets.get(params[0] if params else "", Wallet())
        if method == "getBalance":
            return {"context": context, "value": wallet.lamports}
        if method == "getTokenAccountsByOwner":
            value = [{"pubkey": f"TokenAcct{i}{params[0][:20]}", "account": {
                "data": {"parsed": {"info": {"isNative": False, "mint": mint, "owner": params[0],
                                             "state": "initialized",
                                             "tokenAmount": {"amount": str(raw), "decimals": places,
                                                             "uiAmount": raw / 10**places,
                                                             "uiAmountString": str(raw / 10**places)}},
                                    "type": "account"}, "program": "spl-token", "space": 165},
                "executable": False, "lamports": 2_039_280, "owner": params[1]["programId"], "rentEpoch": 0,
                "space": 165}} for i, (mint, (raw, places)) in enumerate(wallet.tokens.items())]
            return {"context": context, "value": value}
        if method == "getSignaturesForAddress":
            options = params[1] if len(params) > 1 else {}
            rows = wallet.signatures
            if options.get("before"):
                names = [r["signature"] for r in rows]
                rows = rows[names.index(options["before"]) + 1:] if options["before"] in names else []
            if options.get("until"):
                names = [r["signature"] for r in rows]
                rows = rows[:names.index(options["until"])] if options["until"] in names else rows
            return rows[:min(int(options.get("limit", 1000)), self.max_limit)]
        raise LookupError(method)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                try:
                    body = {"jsonrpc": "2.0", "id": request.get("id"),
                            "result": fake.answer(request["method"], request.get("params", []))}
                except LookupError:
                    body = {"jsonrpc": "2.0", "id": request.get("id"),
                            "error": {"code": -32601, "message": "Method not found"}}
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                pass

        return Handler
