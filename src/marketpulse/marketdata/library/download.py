"""Candles from an exchange's REST API through ccxt: paginated `fetch_ohlcv`, rate-limit aware.

ccxt's own throttle (`enableRateLimit`, on by default) spaces requests by the exchange's declared rate limit; when the
exchange still answers 429/418 or the network fails, the page is retried with exponential backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import ccxt
import numpy as np

from marketpulse.marketdata.frame import CandleFrame
from marketpulse.marketdata.intervals import interval_ms

PAGE_LIMIT = 1000  # Binance spot's maximum; exchanges that cap lower return fewer and pagination carries on
RETRIES = 5


class DownloadError(RuntimeError):
    pass


def open_exchange(exchange_id: str, *, api_url: str | None = None) -> Any:
    """A ccxt exchange by id ('binance'); `api_url` replaces the scheme and host of every API URL (a mirror or a
    local test server), keeping each path."""
    if exchange_id not in ccxt.exchanges:
        raise DownloadError(f"unknown exchange {exchange_id!r} (ccxt ids, e.g. binance, bybit, okx)")
    exchange = getattr(ccxt, exchange_id)({"enableRateLimit": True})
    if api_url:
        exchange.urls["api"] = _rebase(exchange.urls["api"], api_url.rstrip("/"))
    return exchange


def _rebase(urls: Any, base: str) -> Any:
    if isinstance(urls, dict):
        return {name: _rebase(url, base) for name, url in urls.items()}
    parts = urlsplit(urls)
    return f"{base}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def fetch_pages(
    exchange: Any,
    symbol: str,
    interval: str,
    since_ms: int,
    until_ms: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[CandleFrame]:
    """Closed candles with since_ms <= open time < until_ms, one CandleFrame per page, oldest first.

    Callers pass `until_ms` no later than now minus one interval when they want only closed candles."""
    step = interval_ms(interval)
    if interval not in getattr(exchange, "timeframes", {interval: interval}):
        raise DownloadError(f"{exchange.id} has no {interval} candles (it has: {', '.join(exchange.timeframes)})")
    _load_markets(exchange, symbol, sleep)
    cursor = since_ms - since_ms % step
    while cursor < until_ms:
        rows = _with_retries(partial(exchange.fetch_ohlcv, symbol, interval, cursor, PAGE_LIMIT), sleep)
        page = [r for r in rows if cursor <= r[0] < until_ms and r[0] % step == 0]
        if not page:
            return  # nothing more in the range: the exchange has no later candles yet
        yield _frame(page, symbol, interval)
        cursor = int(page[-1][0]) + step


def _load_markets(exchange: Any, symbol: str, sleep: Callable[[float], None]) -> dict[str, Any]:
    _with_retries(exchange.load_markets, sleep)  # ccxt caches the markets: later calls cost nothing
    if symbol not in exchange.markets:
        raise DownloadError(
            f"{exchange.id} has no market {symbol!r} (ccxt symbols look like BTC/USDT or BTC/USDT:USDT)"
        )
    market: dict[str, Any] = exchange.markets[symbol]
    return market


def library_exchange(exchange: Any, symbol: str, *, sleep: Callable[[float], None] = time.sleep) -> str:
    """The library's exchange level for `symbol`: the ccxt id for spot, `<id>_<type>` otherwise ('binance_swap').

    Spot BTC/USDT and the BTC/USDT:USDT perpetual both become the library symbol BTCUSDT; their prices differ,
    so they must not share a series."""
    return library_exchange_name(exchange.id, _load_markets(exchange, symbol, sleep))


def library_exchange_name(exchange_id: str, market: dict[str, Any]) -> str:
    market_type = market.get("type") or "spot"
    return exchange_id if market_type == "spot" else f"{exchange_id}_{market_type}"


def _with_retries(call: Callable[[], Any], sleep: Callable[[float], None]) -> Any:
    delay = 1.0
    for attempt in range(RETRIES + 1):
        try:
            return call()
        except ccxt.NetworkError as exc:  # includes RateLimitExceeded/DDoSProtection (429, 418) and timeouts
            if attempt == RETRIES:
                raise DownloadError(f"gave up after {RETRIES} retries: {exc}") from exc
            sleep(delay)
            delay = min(delay * 2, 30.0)
        except ccxt.BaseError as exc:  # bad symbol, bad request: retrying won't help
            raise DownloadError(str(exc)) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _frame(rows: list[list[Any]], symbol: str, interval: str) -> CandleFrame:
    data = np.asarray(rows, dtype=np.float64)
    return CandleFrame(
        time=np.asarray([int(r[0]) for r in rows], dtype=np.int64),
        open=data[:, 1].copy(), high=data[:, 2].copy(), low=data[:, 3].copy(),
        close=data[:, 4].copy(), volume=data[:, 5].copy(),
        symbol=symbol, interval=interval,
    )  # fmt: skip
