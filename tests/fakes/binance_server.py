"""A local fake Binance USD-M futures exchange: REST and WebSocket on one port, in Binance's real formats.

    async with FakeBinance.start() as fake:
        fake.add_symbol("BTCUSDT", tick_size="0.10")
        source = BinanceSource(fake.settings(), clock)
        ...
        await fake.wait_for_connections(1)
        await fake.push("!ticker@arr", [ticker_payload("BTCUSDT", ...)])

REST (`GET /fapi/v1/exchangeInfo|klines|openInterest|premiumIndex`) answers from the attributes tests fill.
WebSocket mirrors Binance's April-2026 routing: `/market/...` connections get market streams (tickers, mark
price, klines), `/public/...` and unrouted (`/stream`, `/ws/...`) connections get only public high-frequency
streams (depth, bookTicker) — an unrouted ticker subscription gets no data and no error.
Tests control it: push frames or raw text, drop connections, refuse connects, ping clients, answer 429/418.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from marketpulse.settings import Settings

PUBLIC_STREAM_MARKERS = ("@depth", "@bookTicker", "!bookTicker", "@rpiDepth")


def stream_category(stream: str) -> str:
    return "public" if any(m in stream for m in PUBLIC_STREAM_MARKERS) else "market"


@dataclass
class FakeConnection:
    ws: ServerConnection
    category: str  # market, public, or root (no routed path: gets public streams only)
    streams: frozenset[str]

    def receives(self, stream: str) -> bool:
        wanted = "public" if self.category == "root" else self.category
        return stream in self.streams and stream_category(stream) == wanted


@dataclass
class _RateLimit:
    status: int
    retry_after_s: int


@dataclass
class FakeBinance:
    server_time_ms: int = 1_760_126_400_000
    symbols: list[dict[str, Any]] = field(default_factory=list)  # exchangeInfo "symbols", Binance's shape
    klines: dict[str, list[list[Any]]] = field(default_factory=dict)  # symbol → kline rows, oldest first
    open_interest: dict[str, float] = field(default_factory=dict)  # symbol → contracts
    mark_prices: dict[str, float] = field(default_factory=dict)  # symbol → mark price (premiumIndex)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, query) per REST call
    connections: list[FakeConnection] = field(default_factory=list)  # open WebSocket connections
    used_weight: int = 1  # what the X-MBX-USED-WEIGHT-1M header reports
    connects: int = 0  # accepted WebSocket connections, ever
    refused: int = 0  # WebSocket connects answered 503
    _rate_limits: deque[_RateLimit] = field(default_factory=deque)
    _refuse_next: int = 0
    _server: Server | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    # --- lifecycle ---

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls) -> AsyncIterator[FakeBinance]:
        fake = cls()
        # ping_interval=None: the fake pings only when a test asks, like a test-controlled Binance.
        async with serve(fake._handle_ws, "127.0.0.1", 0, process_request=fake._process_request,
                         ping_interval=None, max_size=None) as server:
            fake._server = server
            try:
                yield fake
            finally:
                await fake.drop_connections()

    @property
    def port(self) -> int:
        assert self._server is not None, "use `async with FakeBinance.start()`"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> Settings:
        return Settings(binance_rest_url=self.rest_url, binance_ws_url=self.ws_url, **overrides)

    # --- test controls ---

    def add_symbol(
        self, symbol: str, *, tick_size: str = "0.10", contract_type: str = "PERPETUAL", quote_asset: str = "USDT",
        status: str = "TRADING",
    ) -> None:
        self.symbols.append(symbol_info(symbol, tick_size, contract_type, quote_asset, status))

    def rate_limit_next(self, requests: int = 1, *, retry_after_s: int = 7, status: int = 429) -> None:
        """The next `requests` REST calls answer `status` (429, or 418 for a ban) with Retry-After."""
        self._rate_limits.extend(_RateLimit(status, retry_after_s) for _ in range(requests))

    def refuse_next_connections(self, count: int) -> None:
        """The next `count` WebSocket handshakes answer 503 (as during a Binance maintenance)."""
        self._refuse_next += count

    async def push(self, stream: str, data: Any) -> int:
        """Send `{"stream": stream, "data": data}` to every connection routed to receive it; returns how many."""
        targets = [c for c in self.connections if c.receives(stream)]
        text = json.dumps({"stream": stream, "data": data}, separators=(",", ":"))
        for conn in targets:
            await conn.ws.send(text)
        return len(targets)

    async def send_raw(self, text: str, category: str = "market") -> None:
        """Send a text frame as is (malformed or unknown frames) to every connection of `category`."""
        for conn in self.connections:
            if conn.category == category:
                await conn.ws.send(text)

    async def drop_connections(self) -> None:
        """Cut every connection without a close frame, like a network failure."""
        for conn in list(self.connections):
            if conn.ws.transport is not None:
                conn.ws.transport.abort()
        await self.wait_until(lambda: not self.connections)

    async def ping_clients(self, timeout_s: float = 5.0) -> list[float]:
        """Ping every connection and wait for the pongs; returns the latencies (a missing pong raises)."""
        waiters = [await conn.ws.ping() for conn in self.connections]
        return list(await asyncio.wait_for(asyncio.gather(*waiters), timeout_s))

    async def wait_for_connections(self, count: int, *, connects: int | None = None, timeout_s: float = 10) -> None:
        """Until `count` connections are open (and, optionally, `connects` were accepted in all)."""
        await self.wait_until(
            lambda: len(self.connections) >= count and (connects is None or self.connects >= connects), timeout_s
        )

    async def wait_until(self, predicate: Any, timeout_s: float = 10) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout_s)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- WebSocket ---

    async def _handle_ws(self, ws: ServerConnection) -> None:
        conn = _route(ws)
        self.connections.append(conn)
        self.connects += 1
        await self._notify()
        try:
            await ws.wait_closed()
        finally:
            self.connections.remove(conn)
            await self._notify()

    # --- HTTP: REST endpoints, and the WebSocket handshake gate ---

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if not url.path.startswith("/fapi/"):
            if self._refuse_next > 0:
                self._refuse_next -= 1
                self.refused += 1
                await self._notify()
                return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable\n")
            return None  # go on with the WebSocket handshake
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.requests.append((url.path, query))
        await self._notify()
        if self._rate_limits:
            limit = self._rate_limits.popleft()
            body = {"code": -1003, "msg": "Too many requests; current limit of IP is 2400 requests per minute."}
            return _json(limit.status, body, {"Retry-After": str(limit.retry_after_s)})
        response = self._rest(url.path, query)
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self.used_weight)
        return response

    def _rest(self, path: str, query: dict[str, str]) -> Response:
        if path == "/fapi/v1/exchangeInfo":
            return _json(200, self._exchange_info())
        if path == "/fapi/v1/premiumIndex":
            return _json(200, [premium_index(s, p, self.server_time_ms) for s, p in self.mark_prices.items()])
        symbol = query.get("symbol", "")
        if path == "/fapi/v1/klines" and symbol in self.klines:
            return _json(200, _select_klines(self.klines[symbol], query))
        if path == "/fapi/v1/openInterest" and symbol in self.open_interest:
            return _json(200, {"openInterest": f"{self.open_interest[symbol]:.3f}", "symbol": symbol,
                               "time": self.server_time_ms})
        if path in ("/fapi/v1/klines", "/fapi/v1/openInterest"):
            return _json(400, {"code": -1121, "msg": "Invalid symbol."})
        return _json(404, {"code": -5000, "msg": "Path not found"})

    def _exchange_info(self) -> dict[str, Any]:
        return {
            "timezone": "UTC", "serverTime": self.server_time_ms, "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": self.symbols,
        }


def _route(ws: ServerConnection) -> FakeConnection:
    assert ws.request is not None
    url = urlsplit(ws.request.path)
    parts = [p for p in url.path.split("/") if p]
    category = parts[0] if parts and parts[0] in ("market", "public", "private") else "root"
    mode = parts[1:] if category != "root" else parts
    if mode[:1] == ["stream"]:
        streams = frozenset(s for q in parse_qs(url.query).get("streams", []) for s in q.split("/"))
    else:  # ws mode: /ws/<stream>/<stream>
        streams = frozenset(mode[1:])
    return FakeConnection(ws, category, streams)


def _select_klines(rows: list[list[Any]], query: dict[str, str]) -> list[list[Any]]:
    """Binance's selection: with startTime the first `limit` from there, else the latest `limit`."""
    limit = min(int(query.get("limit", 500)), 1500)
    if "startTime" in query:
        rows = [r for r in rows if r[0] >= int(query["startTime"])]
    if "endTime" in query:
        rows = [r for r in rows if r[0] <= int(query["endTime"])]
    return rows[:limit] if "startTime" in query else rows[-limit:]


def _json(status: int, body: Any, extra_headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = Headers([
        ("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
        ("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
        *(extra_headers or {}).items(),
    ])
    return Response(status, HTTPStatus(status).phrase, headers, payload)


# --- payload builders in Binance's formats (numbers as strings, as Binance sends them) ---


def symbol_info(symbol: str, tick_size: str, contract_type: str, quote_asset: str, status: str) -> dict[str, Any]:
    base = symbol.removesuffix(quote_asset).split("_")[0]
    return {
        "symbol": symbol, "pair": symbol.split("_")[0], "contractType": contract_type,
        "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": status,
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": base,
        "quoteAsset": quote_asset, "marginAsset": quote_asset, "pricePrecision": 2, "quantityPrecision": 3,
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
        "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick_size, "maxPrice": "4529764", "tickSize": tick_size},
            {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": "100"},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def kline_row(
    open_time: int, open_: float, high: float, low: float, close: float, volume: float, quote_volume: float,
    interval_ms: int = 60_000,
) -> list[Any]:
    """[open time, o, h, l, c, volume, close time, quote volume, trades, taker base, taker quote, ignore]."""
    return [open_time, f"{open_:.8f}", f"{high:.8f}", f"{low:.8f}", f"{close:.8f}", f"{volume:.3f}",
            open_time + interval_ms - 1, f"{quote_volume:.5f}", 1234, f"{volume / 2:.3f}", f"{quote_volume / 2:.5f}",
            "0"]


def ticker_payload(
    symbol: str, event_time: int, *, last: float, open_: float, high: float, low: float, volume: float,
    quote_volume: float,
) -> dict[str, Any]:
    change = last - open_
    return {
        "e": "24hrTicker", "E": event_time, "s": symbol, "p": f"{change:.4f}", "P": f"{change / open_ * 100:.3f}",
        "w": f"{quote_volume / volume:.4f}", "c": f"{last}", "Q": "0.010", "o": f"{open_}", "h": f"{high}",
        "l": f"{low}", "v": f"{volume:.3f}", "q": f"{quote_volume:.2f}", "O": event_time - 86_400_000,
        "C": event_time, "F": 6_000_000_000, "L": 6_001_234_566, "n": 1_234_567,
    }


def mark_price_payload(symbol: str, event_time: int, *, mark: float, funding_rate: str) -> dict[str, Any]:
    return {"e": "markPriceUpdate", "E": event_time, "s": symbol, "p": f"{mark:.8f}", "P": f"{mark:.8f}",
            "i": f"{mark * 0.9999:.8f}", "r": funding_rate, "T": (event_time // 28_800_000 + 1) * 28_800_000}


def premium_index(symbol: str, mark: float, time_ms: int) -> dict[str, Any]:
    return {"symbol": symbol, "markPrice": f"{mark:.8f}", "indexPrice": f"{mark * 0.9999:.8f}",
            "estimatedSettlePrice": f"{mark:.8f}", "lastFundingRate": "0.00010000", "interestRate": "0.00010000",
            "nextFundingTime": (time_ms // 28_800_000 + 1) * 28_800_000, "time": time_ms}


def minute_klines(start_ms: int, closes: Iterable[float], quote_volume: float = 1_000_000.0) -> list[list[Any]]:
    """Consecutive 1m rows from `start_ms`, each opening at the previous close."""
    rows, prev = [], None
    for i, close in enumerate(closes):
        open_ = close if prev is None else prev
        rows.append(kline_row(start_ms + i * 60_000, open_, max(open_, close) * 1.001, min(open_, close) * 0.999,
                              close, quote_volume / close, quote_volume))
        prev = close
    return rows


def force_order_payload(
    symbol: str, event_time: int, *, side: str, price: float, quantity: float, average_price: float | None = None,
) -> dict[str, Any]:
    """One `!forceOrder@arr` element: Binance's liquidation snapshot (`side` SELL liquidates a long)."""
    avg = price if average_price is None else average_price
    return {"e": "forceOrder", "E": event_time + 2, "o": {
        "s": symbol, "S": side, "o": "LIMIT", "f": "IOC", "q": f"{quantity}", "p": f"{price}", "ap": f"{avg}",
        "X": "FILLED", "l": f"{quantity}", "z": f"{quantity}", "T": event_time}}
