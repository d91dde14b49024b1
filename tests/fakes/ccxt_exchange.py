"""A fake Binance REST server for ccxt: exchangeInfo and klines in Binance's real formats, on 127.0.0.1:<port>.

Real `ccxt.binance` talks to it once every API URL's host is replaced (`open_exchange(..., api_url=server.url)`).
It serves spot (`/api/v3/…`) and USD-M futures (`/fapi/v1/…`) paths; coin-M (`/dapi/v1/…`) lists no markets.
Klines honour `startTime`, `endTime` and `limit`, capped at `max_limit` per request (as Binance caps at 1000 spot),
so clients must paginate. `fail_next(n, status)` answers the next n kline requests with an error (e.g. 429).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


class FakeCcxtExchange:
    def __init__(self, max_limit: int = 1000) -> None:
        self.max_limit = max_limit
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

    def fail_next(self, count: int, status: int = 429) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    @contextmanager
    def running(self) -> Iterator[FakeCcxtExchange]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()

    # --- HTTP ---------------------------------------------------------------------------------------------------

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
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
                status, body = fake._route(parts.path, query)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                pass

        return Handler
