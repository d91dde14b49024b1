"""The paper account's books: balance, signed positions at average price, realized P&L and fees. Pure.

Margin-style, like a perpetual-futures wallet and like the backtest engine's account: the balance (`cash`)
moves only by realized P&L and fees, and equity = balance + unrealized P&L at the marks. Realized P&L is gross
of fees (fees are reported on their own line, as exchanges do), so net P&L = realized + unrealized − fees.

A position is keyed by (symbol, book): book "" holds the owner's manual trades, a deployment's id holds that
deployment's, so the two never net against each other on the same symbol. Marks are per symbol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketpulse.trading.risk.manager import MANUAL, PositionKey


@dataclass
class Position:
    symbol: str
    quantity: float  # signed: > 0 long, < 0 short
    avg_price: float
    opened_at_ms: int
    book: str = MANUAL

    @property
    def key(self) -> PositionKey:
        return (self.symbol, self.book)


@dataclass
class Book:
    cash: float
    realized_pnl: float = 0.0
    fees_paid: float = 0.0
    positions: dict[PositionKey, Position] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)  # symbol → last price seen

    def mark(self, symbol: str) -> float | None:
        if symbol in self.marks:
            return self.marks[symbol]
        held = [p for p in self.positions.values() if p.symbol == symbol]
        return held[0].avg_price if held else None

    def value_at(self, p: Position) -> float:
        return self.mark(p.symbol) or p.avg_price

    def unrealized_pnl(self) -> float:
        return sum(p.quantity * (self.value_at(p) - p.avg_price) for p in self.positions.values())

    def equity(self) -> float:
        return self.cash + self.unrealized_pnl()

    def notional(self) -> float:
        """Σ |quantity| × mark over every position: what margin is held against."""
        return sum(abs(p.quantity) * self.value_at(p) for p in self.positions.values())

    def symbols(self) -> set[str]:
        return {p.symbol for p in self.positions.values()}

    def net_quantity(self, symbol: str) -> float:
        return sum(p.quantity for p in self.positions.values() if p.symbol == symbol)

    def quantity(self, key: PositionKey) -> float:
        pos = self.positions.get(key)
        return pos.quantity if pos else 0.0

    def apply_fill(
        self, symbol: str, signed_qty: float, price: float, fee: float, time_ms: int, book: str = MANUAL
    ) -> float:
        """Book one fill; returns the P&L it realized (closing part of a position), gross of the fee."""
        self.cash -= fee
        self.fees_paid += fee
        self.marks[symbol] = price
        key = (symbol, book)
        pos = self.positions.get(key)
        if pos is None:
            self.positions[key] = Position(symbol, signed_qty, price, time_ms, book)
            return 0.0
        realized = _realized_on(pos, signed_qty, price)
        self.cash += realized
        self.realized_pnl += realized
        _resize(self.positions, pos, signed_qty, price, time_ms)
        return realized


def _realized_on(pos: Position, signed_qty: float, price: float) -> float:
    if pos.quantity * signed_qty >= 0:
        return 0.0  # adding to the position realizes nothing
    closed = min(abs(signed_qty), abs(pos.quantity))
    direction = 1.0 if pos.quantity > 0 else -1.0
    return closed * (price - pos.avg_price) * direction


def _resize(
    positions: dict[PositionKey, Position], pos: Position, signed_qty: float, price: float, time_ms: int
) -> None:
    new_qty = pos.quantity + signed_qty
    if abs(new_qty) < 1e-12:
        del positions[pos.key]
    elif pos.quantity * signed_qty > 0:  # adding: the average moves
        pos.avg_price = (pos.avg_price * pos.quantity + price * signed_qty) / new_qty
        pos.quantity = new_qty
    elif pos.quantity * new_qty > 0:  # partly closed: the average stays
        pos.quantity = new_qty
    else:  # flipped: the remainder is a new position opened at this price
        positions[pos.key] = Position(pos.symbol, new_qty, price, time_ms, pos.book)
