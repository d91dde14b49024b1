"""Binance USD-M REST client (httpx): exchange info, klines, open interest, premium index.

Rate limits: Binance answers 429 when the IP's request weight is exceeded and 418 once it bans the IP for
ignoring 429s; both carry `Retry-After` (seconds). On either, *every* request of this client waits until that
moment (a shared gate), then the request is retried. To stay clear of 429s in the first place, once the
`X-MBX-USED-WEIGHT-1M` header reports the minute's weight nearly spent, requests wait for the next minute.
Waits go through the injected `sleep`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import httpx
import structlog

from marketpulse.clock import Clock
from marketpulse.marketdata.binance import frames
from marketpulse.marketdata.intervals import MINUTE_MS
from marketpulse.marketdata.models import Candle, OpenInterest

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]
RATE_LIMITED = (429, 418)
DEFAULT_RETRY_AFTER_S = 60.0  # when Binance omits the header
MAX_ATTEMPTS = 5
WEIGHT_LIMIT_PER_MINUTE = 2400  # USD-M futures, per IP
WEIGHT_HEADROOM = 200  # pause at 2200: other requests of the same minute are already in flight


class BinanceApiError(RuntimeError):
    """A non-2xx answer other than a rate limit, e.g. 400 {"code": -1121, "msg": "Invalid symbol."}."""

    def __init__(self, status: int, path: str, body: str) -> None:
        super().__init__(f"Binance {path} answered {status}: {body[:200]}")
        self.status = status


class BinanceRest:
    def __init__(
        self, base_url: str, clock: Clock, *, sleep: Sleep = asyncio.sleep, timeout_s: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._client = client or httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self._clock = clock
        self._sleep = sleep
        self._resume_at_ms = 0  # no request before this (set by 429/418)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> bytes:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self._wait_for_gate()
            response = await self._client.get(path, params=params)
            if response.status_code in RATE_LIMITED:
                retry_after = _retry_after_s(response)
                self._resume_at_ms = max(self._resume_at_ms, self._clock.now_ms() + int(retry_after * 1000))
                log.warning("binance rate limited", path=path, status=response.status_code,
                            retry_after_s=retry_after, attempt=attempt)
                continue
            if response.is_error:
                raise BinanceApiError(response.status_code, path, response.text)
            self._respect_used_weight(response)
            return response.content
        raise BinanceApiError(429, path, f"still rate limited after {MAX_ATTEMPTS} attempts")

    def _respect_used_weight(self, response: httpx.Response) -> None:
        try:
            used = int(response.headers.get("X-MBX-USED-WEIGHT-1M", 0))
        except ValueError:
            return
        if used >= WEIGHT_LIMIT_PER_MINUTE - WEIGHT_HEADROOM:
            next_minute = (self._clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS
            if next_minute > self._resume_at_ms:
                log.info("binance request weight nearly spent; pausing until the next minute", used_weight=used)
                self._resume_at_ms = next_minute

    async def _wait_for_gate(self) -> None:
        delay_ms = self._resume_at_ms - self._clock.now_ms()
        if delay_ms > 0:
            await self._sleep(delay_ms / 1000)

    async def active_symbols(self) -> frames.ActiveSymbols:
        return frames.parse_exchange_info(await self.get("/fapi/v1/exchangeInfo"))

    async def klines(
        self, symbol: str, *, interval: str = "1m", limit: int = 2, start_time: int | None = None
    ) -> list[Candle]:
        params: dict[str, str | int] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_time is not None:
            params["startTime"] = start_time
        return frames.parse_klines(await self.get("/fapi/v1/klines", params), symbol, interval)

    async def open_interest(self, symbol: str, mark_price: float) -> OpenInterest:
        return frames.parse_open_interest(await self.get("/fapi/v1/openInterest", {"symbol": symbol}), mark_price)

    async def mark_prices(self) -> dict[str, float]:
        return frames.parse_premium_index(await self.get("/fapi/v1/premiumIndex"))


def _retry_after_s(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return DEFAULT_RETRY_AFTER_S
