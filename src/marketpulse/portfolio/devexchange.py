"""A fake Binance REST server for ccxt (the tests' exchange, and the one `pulse demo` lets its users connect):
exchangeInfo and klines in Binance's real formats, on 127.0.0.1:<port>; and the signed account endpoints a
read-only key reads (balances, trades, deposits, withdrawals, funding, the key's permissions), checking
`X-MBX-APIKEY` and the HMAC-SHA256 `signature` as Binance does.

Real `ccxt.binance` talks to it once every API URL's host is replaced (`open_exchange(..., api_url=server.url)`).
It serves spot (`/api/v3/…`) and USD-M futures (`/fapi/v1/…`) paths; coin-M (`/dapi/v1/…`) lists no markets.
Klines honour `startTime`, `endTime` and `limit`, capped at `max_limit` per request (as Binance caps at 1000 spot),
so clients must paginate. `fail_next(n, status)` answers the next n kline requests with an error (e.g. 429).

    fake.add_account(Account(key, secret, balances={"BTC": "0.5"}, trades={"BTCUSDT": [my_trade(...)]}, ...))

Private lists honour `startTime`, `endTime` and `limit` (capped at `private_limit`, so clients must page); deposits
and withdrawals come newest first and trades and incomes oldest first, as Binance sends them.
`fail_private_next(n, status, after=k)` fails n signed requests after k more (a sync must resume where it stopped).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SERVER_TIME = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def kline(open_time: int, o: float, h: float, lo: float, c: float, v: float, interval_ms: int) -> list[Any]:
    """Binance's 12-field kline row: numbers as strings, as the real API sends them."""
    return [open_time, f"{o}", f"{h}", f"{lo}", f"{c}", f"{v}", open_time + interval_ms - 1, f"{v * c}", 42,
            f"{v / 2}", f"{v * c / 2}", "0"]  # fmt: skip


def spot_symbol(base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": f"{base}{quote}", "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
        "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00", "stepSize": "0.00001"},
        ],
    }  # fmt: skip


def my_trade(trade_id: int, symbol: str, time_ms: int, price: str, qty: str, *, buyer: bool, commission: str = "0",
             commission_asset: str = "USDT") -> dict[str, Any]:
    """One row of `GET /api/v3/myTrades`."""
    return {"symbol": symbol, "id": trade_id, "orderId": 100_000 + trade_id, "orderListId": -1, "price": price,
            "qty": qty, "quoteQty": f"{float(price) * float(qty):.8f}", "commission": commission,
            "commissionAsset": commission_asset, "time": time_ms, "isBuyer": buyer, "isMaker": False,
            "isBestMatch": True}


def deposit(dep_id: str, coin: str, amount: str, time_ms: int, tx_id: str, network: str = "ETH") -> dict[str, Any]:
    """One row of `GET /sapi/v1/capital/deposit/hisrec` (status 1: success)."""
    return {"id": dep_id, "amount": amount, "coin": coin, "network": network, "status": 1,
            "address": "0x" + "d" * 40, "addressTag": "", "txId": tx_id, "insertTime": time_ms, "transferType": 0,
            "confirmTimes": "12/12", "unlockConfirm": 0, "walletType": 0}


def _binance_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def withdrawal(wd_id: str, coin: str, amount: str, fee: str, time_ms: int, tx_id: str,
               network: str = "ETH") -> dict[str, Any]:
    """One row of `GET /sapi/v1/capital/withdraw/history` (status 6: completed; times as Binance's UTC text)."""
    return {"id": wd_id, "amount": amount, "transactionFee": fee, "coin": coin, "status": 6,
            "address": "0x" + "e" * 40, "txId": tx_id, "applyTime": _binance_time(time_ms), "network": network,
            "transferType": 0, "info": "", "confirmNo": 12, "walletType": 0, "txKey": "",
            "completeTime": _binance_time(time_ms + 60_000)}


def funding_income(tran_id: int, symbol: str, income: str, time_ms: int, asset: str = "USDT") -> dict[str, Any]:
    """One row of `GET /fapi/v1/income` with incomeType FUNDING_FEE."""
    return {"symbol": symbol, "incomeType": "FUNDING_FEE", "income": income, "asset": asset, "info": "FUNDING_FEE",
            "time": time_ms, "tranId": tran_id, "tradeId": ""}


@dataclass
class Account:
    """One API key's account: what its signed endpoints answer."""

    key: str
    secret: str
    balances: dict[str, str] = field(default_factory=dict)  # asset → free
    trades: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # exchange symbol → my_trade rows
    deposits: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)
    incomes: list[dict[str, Any]] = field(default_factory=list)
    can_trade: bool = False
    can_withdraw: bool = False


PRIVATE = frozenset({"/api/v3/account", "/api/v3/myTrades", "/sapi/v1/capital/deposit/hisrec",
                     "/sapi/v1/capital/withdraw/history", "/fapi/v1/income", "/sapi/v1/account/apiRestrictions"})


class FakeCcxtExchange:
    def __init__(self, max_limit: int = 1000, private_limit: int = 1000) -> None:
        self.max_limit = max_limit
        self.private_limit = private_limit
        self.accounts: dict[str, Account] = {}
        self.private_requests: list[tuple[str, dict[str, str]]] = []
        self._private_failures: list[int] = []
        self.klines: dict[tuple[str, str], list[list[Any]]] = {}  # (symbol, interval) → rows sorted by time
        self.symbols: dict[str, dict[str, Any]] = {}
        self.kline_requests: list[dict[str, str]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval: shutdown() waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_klines(self, base: str, quote: str, interval: str, rows: Iterable[list[Any]]) -> None:
        self.symbols[f"{base}{quote}"] = spot_symbol(base, quote)
        self.klines[(f"{base}{quote}", interval)] = sorted(rows, key=lambda r: r[0])

    def add_account(self, account: Account) -> Account:
        self.accounts[account.key] = account
        return account

    def add_market(self, base: str, quote: str) -> None:
        self.symbols[f"{base}{quote}"] = spot_symbol(base, quote)

    def fail_private_next(self, count: int, status: int = 429, *, after: int = 0) -> None:
        """Fail `count` signed requests after letting `after` more through."""
        with self._lock:
            self._private_failures.extend([200] * after + [status] * count)

    def fail_next(self, count: int, status: int = 429) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    @contextmanager
    def running(self) -> Iterator[FakeCcxtExchange]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- HTTP ---------------------------------------------------------------------------------------------------

    def _route(self, path: str, query: dict[str, str], raw_query: str = "", key: str = "") -> tuple[int, Any]:
        if path in PRIVATE:
            return self._private(path, query, raw_query, key)
        if path == "/api/v3/exchangeInfo":
            return 200, {"timezone": "UTC", "serverTime": SERVER_TIME, "rateLimits": [],
                         "symbols": list(self.symbols.values())}  # fmt: skip
        if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            return 200, {"timezone": "UTC", "serverTime": SERVER_TIME, "rateLimits": [], "assets": [], "symbols": []}
        if path in ("/api/v3/klines", "/fapi/v1/klines"):
            return self._klines(query)
        if path in ("/api/v3/time", "/fapi/v1/time"):
            return 200, {"serverTime": SERVER_TIME}
        return 404, {"code": -1, "msg": f"fake exchange: no route {path}"}

    def _private(self, path: str, query: dict[str, str], raw_query: str, key: str) -> tuple[int, Any]:
        account = self.accounts.get(key)
        if account is None:
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        unsigned, _, signature = raw_query.rpartition("&signature=")
        expected = hmac.new(account.secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected) or "timestamp" not in query:
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
        with self._lock:
            self.private_requests.append((path, query))
            status = self._private_failures.pop(0) if self._private_failures else 200
        if status != 200:
            return status, {"code": -1003, "msg": "Too many requests; current limit is 1200 request weight per minute."}
        start, end = int(query.get("startTime", 0)), int(query.get("endTime", 2**62))
        limit = min(int(query.get("limit", 500)), self.private_limit)
        if path == "/api/v3/account":
            return 200, {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                         "canTrade": account.can_trade, "canWithdraw": account.can_withdraw, "canDeposit": True,
                         "brokered": False, "requireSelfTradePrevention": False, "updateTime": SERVER_TIME,
                         "accountType": "SPOT", "permissions": ["SPOT"],
                         "balances": [{"asset": a, "free": v, "locked": "0.00000000"}
                                      for a, v in account.balances.items()]}  # fmt: skip
        if path == "/sapi/v1/account/apiRestrictions":
            return 200, {"ipRestrict": False, "createTime": SERVER_TIME, "enableReading": True,
                         "enableSpotAndMarginTrading": account.can_trade, "enableWithdrawals": account.can_withdraw,
                         "enableInternalTransfer": False, "enableMargin": False, "enableFutures": False,
                         "permitsUniversalTransfer": False, "enableVanillaOptions": False,
                         "enablePortfolioMarginTrading": False}  # fmt: skip
        if path == "/api/v3/myTrades":
            if query.get("symbol") not in self.symbols:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            rows = [t for t in account.trades.get(query["symbol"], []) if start <= t["time"] <= end]
            return 200, sorted(rows, key=lambda t: (t["time"], t["id"]))[:limit]
        if path == "/sapi/v1/capital/deposit/hisrec":
            rows = [d for d in account.deposits if start <= d["insertTime"] <= end]
            return 200, sorted(rows, key=lambda d: -d["insertTime"])[:limit]
        if path == "/sapi/v1/capital/withdraw/history":
            def applied(w: dict[str, Any]) -> int:
                return int(datetime.strptime(w["applyTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
                           * 1000)
            rows = [w for w in account.withdrawals if start <= applied(w) <= end]
            return 200, sorted(rows, key=lambda w: -applied(w))[:limit]
        # /fapi/v1/income
        kind = query.get("incomeType")
        rows = [i for i in account.incomes if start <= i["time"] <= end and kind in (None, i["incomeType"])]
        return 200, sorted(rows, key=lambda i: (i["time"], i["tranId"]))[:limit]

    def _klines(self, query: dict[str, str]) -> tuple[int, Any]:
        with self._lock:
            self.kline_requests.append(query)
            status = self._failures.pop(0) if self._failures else 200
        if status != 200:
            return status, {"code": -1003, "msg": "Too many requests; current limit is 1200 request weight per minute."}
        rows = self.klines.get((query.get("symbol", ""), query.get("interval", "")))
        if rows is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        start = int(query.get("startTime", 0))
        end = int(query.get("endTime", 2**62))
        limit = min(int(query.get("limit", 500)), self.max_limit)
        return 200, [r for r in rows if start <= r[0] <= end][:limit]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, body = fake._route(parts.path, query, parts.query, self.headers.get("X-MBX-APIKEY", ""))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                pass

        return Handler
