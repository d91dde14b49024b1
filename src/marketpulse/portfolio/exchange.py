"""An exchange account through ccxt with a read-only API key: balances, and the history (trades, deposits,
withdrawals, funding) page by page, each page with the cursor to resume from.

ccxt's clients are synchronous here (the service runs each call in a worker thread): one client per sync. `api_url`
replaces the host of every API URL (`PULSE_PORTFOLIO_EXCHANGE_URLS`: a mirror, or the fake exchange of tests and
`pulse demo`); ccxt's throttle is on against the exchange's own hosts. Binance's shapes are what the streams are
written against; other exchanges work as far as ccxt unifies them (streams an exchange lacks are skipped).

Cursors are per stream (`trades:BTC/USDT`, `deposits`, `withdrawals`, `funding`): the time of the last record read
and the ids already read at that time, so re-reading from that time (inclusive, as exchanges' `startTime` is) never
duplicates and never skips a record stamped alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt

from marketpulse.marketdata.library.download import DownloadError, open_exchange
from marketpulse.portfolio.core import dec

PAGE = 1000
DEPOSIT_WINDOW_MS = 90 * 86_400_000  # Binance's widest deposit/withdrawal history window
STREAMS = ("deposits", "withdrawals", "funding")


class ExchangeRefused(ValueError):
    """The exchange refused the key (unknown, wrong secret) or the key may trade or withdraw."""


class ExchangeUnavailable(RuntimeError):
    """The exchange could not be reached or answered with an error: the sync resumes from its cursor next time."""


@dataclass(frozen=True)
class Page:
    stream: str
    records: list[dict[str, Any]]  # ccxt unified structures
    cursor: dict[str, Any]  # this stream's cursor once the page is stored


def client(exchange_id: str, api_url: str | None, api_key: str, secret: str) -> Any:
    try:
        exchange = open_exchange(exchange_id, api_url=api_url)
    except DownloadError as exc:
        raise ExchangeRefused(str(exc)) from None
    exchange.apiKey, exchange.secret = api_key, secret
    exchange.options["fetchCurrencies"] = False  # a private call on every load_markets: not needed to read history
    if exchange_id == "binance":  # spot and USD-M are where this reads; margin pairs would cost another call
        exchange.options["fetchMarkets"] = {"types": ["spot", "linear"]}
        exchange.options["fetchMargins"] = False
    # ccxt spaces requests by the exchange's declared weights (a second per Binance myTrades call); a URL override
    # (a local fake or a mirror) is taken to throttle itself
    exchange.enableRateLimit = api_url is None
    return exchange


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ccxt.AuthenticationError as exc:
        raise ExchangeRefused(f"the exchange refused the key: {str(exc)[:200]}") from None
    except ccxt.PermissionDenied as exc:
        raise ExchangeRefused(f"the key may not read this: {str(exc)[:200]}") from None
    except ccxt.BaseError as exc:  # network, rate limit, exchange error: try again later from the cursor
        raise ExchangeUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def check_read_only(exchange: Any) -> None:
    """Refuse a key that can trade or withdraw (Binance's apiRestrictions); exchanges without such an endpoint are
    trusted to have been given a read-only key."""
    if exchange.id != "binance":
        _call(exchange.fetch_balance)
        return
    found = _call(exchange.sapi_get_account_apirestrictions)
    if found.get("enableSpotAndMarginTrading") or found.get("enableWithdrawals") or found.get("enableFutures") \
            or found.get("enableMargin") or found.get("enableInternalTransfer"):
        raise ExchangeRefused("the key can trade, withdraw or transfer: create a read-only key (reading only)")


def balances(exchange: Any) -> dict[str, Decimal]:
    """Asset → total held (free + locked), zero balances left out."""
    found = _call(exchange.fetch_balance)
    out = {}
    for asset, amount in (found.get("total") or {}).items():
        value = dec(amount)
        if value is not None and value > 0:
            out[str(asset)] = value
    return out


def trade_symbols(exchange: Any, assets: set[str]) -> list[str]:
    """The spot markets whose base or quote the account holds or moved: where its trades can be."""
    _call(exchange.load_markets)
    return sorted(s for s, m in exchange.markets.items()
                  if m.get("spot") and (m.get("base") in assets or m.get("quote") in assets))


def _fresh(records: list[dict[str, Any]], cursor: dict[str, Any]) -> list[dict[str, Any]]:
    since, seen = int(cursor.get("since", 0)), set(cursor.get("ids", []))
    return [r for r in records
            if int(r.get("timestamp") or 0) > since or (int(r.get("timestamp") or 0) == since and _id(r) not in seen)]


def _id(record: dict[str, Any]) -> str:
    return str(record.get("id") or record.get("txid") or record.get("timestamp"))


def _advance(records: list[dict[str, Any]], cursor: dict[str, Any]) -> dict[str, Any]:
    """The cursor after `records` (sorted by time): the last time and every id read at it."""
    if not records:
        return cursor
    last = int(records[-1]["timestamp"])
    ids = [_id(r) for r in records if int(r["timestamp"]) == last]
    if last == int(cursor.get("since", -1)):
        ids = list(cursor.get("ids", [])) + ids
    return {**cursor, "since": last, "ids": ids}


def history(exchange: Any, cursors: dict[str, Any], assets: set[str], start_ms: int,
            until_ms: int) -> Iterator[Page]:
    """Every record not read yet, a page at a time (oldest first within a stream), up to `until_ms`."""
    for symbol in trade_symbols(exchange, assets):
        name = f"trades:{symbol}"
        yield from _paged(name, cursors.get(name) or {"since": start_ms},
                          lambda since, s=symbol: _call(exchange.fetch_my_trades, s, since, PAGE), until_ms)
    if exchange.has.get("fetchDeposits"):
        yield from _windowed("deposits", cursors.get("deposits") or {"since": start_ms},
                             lambda since, until: _call(exchange.fetch_deposits, None, since, PAGE,
                                                        {"until": until}), until_ms)
    if exchange.has.get("fetchWithdrawals"):
        yield from _windowed("withdrawals", cursors.get("withdrawals") or {"since": start_ms},
                             lambda since, until: _call(exchange.fetch_withdrawals, None, since, PAGE,
                                                        {"until": until}), until_ms)
    if exchange.has.get("fetchFundingHistory"):
        yield from _paged("funding", cursors.get("funding") or {"since": start_ms},
                          lambda since: _call(exchange.fetch_funding_history, None, since, PAGE), until_ms)


def _paged(name: str, cursor: dict[str, Any], fetch: Any, until_ms: int) -> Iterator[Page]:
    """A list read forward from `since`: each page from the last time read, until a page brings nothing new."""
    while True:
        raw = sorted(fetch(int(cursor["since"])), key=lambda r: (int(r.get("timestamp") or 0), _id(r)))
        records = [r for r in _fresh(raw, cursor) if int(r.get("timestamp") or 0) <= until_ms]
        if not records:
            return
        cursor = _advance(records, cursor)
        yield Page(name, records, cursor)


def _windowed(name: str, cursor: dict[str, Any], fetch: Any, until_ms: int) -> Iterator[Page]:
    """A list the exchange serves per time window (90 days): window by window, paging inside a full window."""
    while int(cursor["since"]) <= until_ms:
        since = int(cursor["since"])
        end = min(since + DEPOSIT_WINDOW_MS - 1, until_ms)
        raw = sorted(fetch(since, end), key=lambda r: (int(r.get("timestamp") or 0), _id(r)))
        records = _fresh([r for r in raw if int(r.get("timestamp") or 0) <= end], cursor)
        if records and len(raw) >= PAGE:  # a full page: more may follow inside this window
            cursor = _advance(records, cursor)
            yield Page(name, records, cursor)
            continue
        # the window is read: the next starts after it (ids of its last millisecond kept)
        cursor = _advance(records, cursor) if records else cursor
        cursor = {**cursor, "since": end + 1, "ids": []} if end < until_ms else cursor
        yield Page(name, records, cursor)
        if end >= until_ms:
            return
