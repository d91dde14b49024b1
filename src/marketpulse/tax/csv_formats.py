"""File formats: the generic transactions CSV in, Form 8949 / Schedule D / gains / income CSVs out. Pure text ↔ data.

Generic CSV columns (header required, exactly these names, any order): `timestamp` (ISO 8601 or epoch ms), `type`
(buy, sell, deposit, withdrawal, income, fee, transfer_in, transfer_out), `asset`, `amount` (> 0), `price_usd`
(per unit; required for buy, sell, income and fee), `fee_usd` (empty = 0), `account`, `tx_id`.
A bad row raises `RowError` naming the line (1 = header) and the field.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from marketpulse.tax.core import (
    EXACT,
    PRICED_TYPES,
    ZERO,
    Disposal,
    IncomeEvent,
    Term,
    Transaction,
    TxType,
    cents,
    share,
    utc_date,
)
from marketpulse.times import parse_time_ms

GENERIC_COLUMNS = ("timestamp", "type", "asset", "amount", "price_usd", "fee_usd", "account", "tx_id")
FORM_8949_COLUMNS = (
    "description",
    "date_acquired",
    "date_sold",
    "proceeds",
    "cost_basis",
    "gain_loss",
    "term",
    "account",
)
SCHEDULE_D_COLUMNS = ("line", "term", "proceeds", "cost_basis", "gain_loss")
GAINS_COLUMNS = (
    "date_sold",
    "type",
    "asset",
    "amount",
    "account",
    "tx_id",
    "lot_id",
    "date_acquired",
    "lot_account",
    "lot_amount",
    "proceeds",
    "cost_basis",
    "gain_loss",
    "term",
    "missing_basis",
)
INCOME_COLUMNS = ("date", "asset", "amount", "value_usd", "account", "tx_id")


class RowError(ValueError):
    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(f"line {line}: {field}: {message}")
        self.line = line
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ParsedRow:
    line: int
    tx: Transaction


def read_generic(text: str) -> Iterator[ParsedRow]:
    """Each row of a generic CSV as a Transaction; RowError at the first bad one (stops there)."""
    for line, row in _rows(text):
        yield ParsedRow(line, require_price(parse_row(row, line), line))


def require_price(tx: Transaction, line: int) -> Transaction:
    """The transaction, or RowError when its type needs a price and it has none (never taken as 0)."""
    if tx.price_usd is None and tx.type in PRICED_TYPES:
        raise RowError(line, "price_usd", f"required for {tx.type.value} (a missing price is never taken as 0)")
    return tx


def _rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in GENERIC_COLUMNS if name not in header]
    if missing:
        raise RowError(1, missing[0], f"missing column (the header needs {', '.join(GENERIC_COLUMNS)})")
    reader.fieldnames = header
    for row in reader:
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # a blank line is not a transaction
        yield reader.line_num, {key: (row.get(key) or "").strip() for key in GENERIC_COLUMNS}


def parse_row(row: dict[str, str], line: int) -> Transaction:
    try:
        timestamp = parse_time_ms(row["timestamp"])
    except ValueError as exc:
        raise RowError(line, "timestamp", str(exc)) from None
    try:
        kind = TxType(row["type"].lower())
    except ValueError:
        raise RowError(line, "type", f"{row['type']!r} is not one of {', '.join(t.value for t in TxType)}") from None
    asset = row["asset"].upper()
    if not asset:
        raise RowError(line, "asset", "required")
    amount = _decimal(row["amount"], line, "amount")
    if amount is None or amount <= 0:
        raise RowError(line, "amount", "must be a number > 0")
    price = _decimal(row["price_usd"], line, "price_usd")  # missing: see `require_price` and `tax.prices`
    if price is not None and price < 0:
        raise RowError(line, "price_usd", "must be ≥ 0")
    fee = _decimal(row["fee_usd"], line, "fee_usd") or ZERO
    if fee < 0:
        raise RowError(line, "fee_usd", "must be ≥ 0")
    return Transaction(timestamp, kind, asset, amount, price, fee, row["account"] or "default", row["tx_id"])


def _decimal(text: str, line: int, field: str) -> Decimal | None:
    if text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowError(line, field, f"{text[:40]!r} is not a number") from None
    if not value.is_finite():
        raise RowError(line, field, f"{text[:40]!r} is not a finite number")
    return value


def _csv(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _amount(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def in_year(disposals: Iterable[Disposal], start_ms: int, end_ms: int) -> list[Disposal]:
    return [d for d in disposals if start_ms <= d.disposed_ms < end_ms]


def form_8949_lines(disposals: Iterable[Disposal]) -> list[tuple[str, ...]]:
    """One line per lot a disposal consumed (each has its own date and term), short-term part first.

    Amounts in cents; gain = rounded proceeds − rounded basis so every line adds up as printed. Proceeds are split
    over the lots by amount, the last lot taking the remainder. A part with no known basis reads `(no basis)`.
    """
    lines: list[tuple[Term, int, tuple[str, ...]]] = []
    for order, disposal in enumerate(disposals):
        for part in _parts(disposal):
            lines.append((part.term, order, _line(disposal, part)))
    lines.sort(key=lambda item: (item[0] is Term.LONG, item[1]))
    return [line for _term, _order, line in lines]


@dataclass(frozen=True, slots=True)
class _Part:
    """One lot's share of a disposal (lot_id None: the amount no lot covered)."""

    lot_id: int | None
    amount: Decimal
    acquired_ms: int | None
    proceeds: Decimal
    basis: Decimal
    basis_known: bool
    account: str
    term: Term


def _parts(d: Disposal) -> list[_Part]:
    """Proceeds split over the lots by amount, the last part taking the remainder so the shares add up exactly."""
    raw: list[tuple[int | None, Decimal, int | None, Decimal, bool, str, Term]] = [
        (u.lot_id, u.amount, u.acquired_ms, u.basis, u.basis_known, u.account, u.term) for u in d.lots
    ]
    if d.unmatched_amount > 0:
        raw.append((None, d.unmatched_amount, None, ZERO, False, d.account, Term.SHORT))
    parts = []
    left = d.proceeds
    with localcontext(EXACT):
        for index, (lot_id, amount, acquired, basis, known, account, term) in enumerate(raw):
            part_proceeds = left if index == len(raw) - 1 else share(d.proceeds, amount, d.amount)
            left -= part_proceeds
            parts.append(_Part(lot_id, amount, acquired, part_proceeds, basis, known, account, term))
    return parts


def _line(d: Disposal, part: _Part) -> tuple[str, ...]:
    p, b = cents(part.proceeds), cents(part.basis)
    description = f"{_amount(part.amount)} {d.asset}" + ("" if part.basis_known else " (no basis)")
    return (
        description,
        _day(part.acquired_ms),
        _day(d.disposed_ms),
        str(p),
        str(b),
        str(p - b),
        part.term.value,
        d.account,
    )


def _day(ms: int | None) -> str:
    return utc_date(ms).isoformat() if ms is not None else "UNKNOWN"


def form_8949_csv(disposals: Iterable[Disposal]) -> str:
    return _csv(FORM_8949_COLUMNS, form_8949_lines(disposals))


def schedule_d_totals(disposals: Iterable[Disposal]) -> dict[Term, tuple[Decimal, Decimal, Decimal]]:
    """(proceeds, basis, gain) per term, summed from the Form 8949 lines as printed (so the forms agree)."""
    totals = {term: [ZERO, ZERO, ZERO] for term in Term}
    for line in form_8949_lines(disposals):
        bucket = totals[Term(line[6])]
        bucket[0] += Decimal(line[3])
        bucket[1] += Decimal(line[4])
        bucket[2] += Decimal(line[5])
    return {term: (v[0], v[1], v[2]) for term, v in totals.items()}


def schedule_d_csv(disposals: Iterable[Disposal]) -> str:
    totals = schedule_d_totals(disposals)
    short, long_ = totals[Term.SHORT], totals[Term.LONG]
    rows = [
        ("1b", "short", *short),  # Part I, from Form 8949 box B/H-style lines (no 1099-B basis reported)
        ("8b", "long", *long_),
        ("total", "all", *(a + b for a, b in zip(short, long_, strict=True))),
    ]
    return _csv(SCHEDULE_D_COLUMNS, rows)


def gains_csv(disposals: Iterable[Disposal]) -> str:
    """Every disposal with every lot it consumed: the complete audit trail (full precision, not cents)."""
    rows = []
    for d in disposals:
        sold = _day(d.disposed_ms)
        head = (sold, d.type.value, d.asset, _amount(d.amount), d.account, d.tx_id)
        for part in _parts(d):
            gain = part.proceeds - part.basis
            rows.append(
                (
                    *head,
                    part.lot_id or "",
                    _day(part.acquired_ms),
                    part.account,
                    _amount(part.amount),
                    part.proceeds,
                    part.basis,
                    gain,
                    part.term.value,
                    "no" if part.basis_known else "yes",
                )
            )
    return _csv(GAINS_COLUMNS, rows)


def income_csv(events: Iterable[IncomeEvent]) -> str:
    rows = [
        (utc_date(e.received_ms).isoformat(), e.asset, _amount(e.amount), cents(e.value_usd), e.account, e.tx_id)
        for e in events
    ]
    return _csv(INCOME_COLUMNS, rows)
