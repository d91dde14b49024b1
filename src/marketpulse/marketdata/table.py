"""The live market table (pure): merges 24h tickers, mark price/funding and open interest into MarketRows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from marketpulse.marketdata.models import MarketRow, MarkPrice, Ticker24h


class MarketTable:
    def __init__(self, precisions: Mapping[str, int] | None = None) -> None:
        self._rows: dict[str, MarketRow] = {}
        self._funding: dict[str, float] = {}
        self._oi: dict[str, float] = {}
        self._precisions: dict[str, int] = dict(precisions or {})

    def set_precisions(self, precisions: Mapping[str, int]) -> None:
        self._precisions.update(precisions)
        for sym, row in self._rows.items():
            row.price_precision = self._precisions.get(sym, row.price_precision)

    def apply_tickers(self, tickers: Iterable[Ticker24h]) -> list[MarketRow]:
        """Update from tickers; returns the rows that changed."""
        changed = []
        for t in tickers:
            row = self._rows.get(t.symbol)
            if row is None:
                row = MarketRow(
                    symbol=t.symbol, time=t.time, price=t.last_price, change_pct_24h=t.change_pct,
                    quote_volume_24h=t.quote_volume, funding_rate=self._funding.get(t.symbol),
                    open_interest_usd=self._oi.get(t.symbol), price_precision=self._precisions.get(t.symbol),
                )
                self._rows[t.symbol] = row
            else:
                row.time, row.price = t.time, t.last_price
                row.change_pct_24h, row.quote_volume_24h = t.change_pct, t.quote_volume
            changed.append(row)
        return changed

    def apply_mark_prices(self, marks: Iterable[MarkPrice]) -> None:
        for m in marks:
            self._funding[m.symbol] = m.funding_rate
            if (row := self._rows.get(m.symbol)) is not None:
                row.funding_rate = m.funding_rate

    def apply_open_interest(self, usd_by_symbol: Mapping[str, float]) -> None:
        self._oi.update(usd_by_symbol)
        for sym, usd in usd_by_symbol.items():
            if (row := self._rows.get(sym)) is not None:
                row.open_interest_usd = usd

    def apply_rows(self, rows: Iterable[MarketRow]) -> list[MarketRow]:
        """Merge whole rows (as sources publish them); a field a row leaves as None keeps the table's value."""
        changed = []
        for new in rows:
            row = self._rows.get(new.symbol)
            if row is None:
                row = self._rows[new.symbol] = MarketRow(
                    symbol=new.symbol, time=new.time, price=new.price, change_pct_24h=new.change_pct_24h,
                    quote_volume_24h=new.quote_volume_24h,
                )
            else:
                row.time, row.price = new.time, new.price
                row.change_pct_24h, row.quote_volume_24h = new.change_pct_24h, new.quote_volume_24h
            if new.funding_rate is not None:
                row.funding_rate = self._funding[new.symbol] = new.funding_rate
            if new.open_interest_usd is not None:
                row.open_interest_usd = self._oi[new.symbol] = new.open_interest_usd
            if new.price_precision is not None:
                row.price_precision = self._precisions[new.symbol] = new.price_precision
            row.funding_rate = self._funding.get(new.symbol, row.funding_rate)
            row.open_interest_usd = self._oi.get(new.symbol, row.open_interest_usd)
            row.price_precision = self._precisions.get(new.symbol, row.price_precision)
            changed.append(row)
        return changed

    def rows(self) -> list[MarketRow]:
        return list(self._rows.values())

    def get(self, symbol: str) -> MarketRow | None:
        return self._rows.get(symbol)
