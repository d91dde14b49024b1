"""Tax in the database: imports (deduplicated, so a file imported twice changes nothing) and report jobs.

Every method takes the owner and filters by it: another user's report id is simply not found. A report runs as a
background task (the engine in a worker thread, so the event loop keeps serving), its progress and result stored on
its row; a job still running when the process stops is stored as failed, to be started again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.clock import Clock
from marketpulse.tax.core import Method, Term, Transaction, TxType, cents, dedupe_key, year_bounds_ms
from marketpulse.tax.csv_formats import (
    ParsedRow,
    RowError,
    form_8949_csv,
    gains_csv,
    in_year,
    income_csv,
    require_price,
    schedule_d_csv,
    schedule_d_totals,
)
from marketpulse.tax.layouts import decode
from marketpulse.tax.lots import Match, TransferLinks, compute, transfer_matches
from marketpulse.tax.prices import Prices, fill_prices
from marketpulse.tax.tables import TaxReportRow, TaxTransactionRow, TaxTransferLinkRow

log = structlog.get_logger(__name__)
ARTIFACTS = {"form8949.csv": "form8949_csv", "schedule-d.csv": "schedule_d_csv", "gains.csv": "gains_csv",
             "income.csv": "income_csv"}


@dataclass(frozen=True)
class Rejected:
    line: int
    field: str
    reason: str


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str


@dataclass(frozen=True)
class ImportSummary:
    layout: str
    rows_read: int
    imported: int  # transactions stored (an exchange's trade row can make two or three)
    duplicates: int  # transactions already stored, or repeated in the file
    rejected: list[Rejected]
    ignored: list[Skipped]


@dataclass(frozen=True)
class Prepared:
    """A file read, priced and checked: what `import_file` stores."""

    layout: str
    rows_read: int
    rows: list[ParsedRow]
    rejected: list[Rejected]
    ignored: list[Skipped]


def prepare(text: str, prices: Prices | None, account: str | None = None) -> Prepared:
    """Decode any known layout (RowError on an unknown header), fill missing prices, reject rows still unpriced."""
    decoded = decode(text, account)
    rows: list[ParsedRow] = []
    errors: list[RowError] = list(decoded.rejected)
    failed_lines = {e.line for e in errors}
    for parsed in fill_prices(decoded.rows, prices):
        try:
            rows.append(ParsedRow(parsed.line, require_price(parsed.tx, parsed.line)))
        except RowError as exc:
            if parsed.line not in failed_lines:  # one reason per line is enough
                errors.append(RowError(exc.line, exc.field, f"{exc.message}; no {parsed.tx.asset} price in the "
                                       "file, nor in the market-data library at that minute"))
                failed_lines.add(parsed.line)
    rows = [r for r in rows if r.line not in failed_lines]  # a trade is stored whole or not at all
    errors.sort(key=lambda e: e.line)
    return Prepared(decoded.layout, decoded.rows_read, rows, [Rejected(e.line, e.field, e.message) for e in errors],
                    [Skipped(i.line, i.reason) for i in decoded.ignored])


class NotYours(LookupError):
    """No such transaction of this owner (another user's id is simply not found)."""


class NotATransfer(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TransferView:
    received: tuple[str, Transaction]  # (transaction id, transaction)
    sent: tuple[str, Transaction] | None
    status: str  # confirmed | auto | unmatched


class TaxService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, prices: Prices | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.prices = prices
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()

    # ---- transactions -------------------------------------------------------------------------------------------

    async def import_file(self, owner: str, text: str, account: str | None = None) -> ImportSummary:
        """Import a CSV in any known layout (RowError on an unknown header). Transactions already stored for this
        owner, or repeated within the file, count as duplicates; bad rows are rejected with their line and reason,
        rows without a tax event are ignored with theirs; the rest are stored."""
        ready = await asyncio.to_thread(prepare, text, self.prices, account)
        now = self.clock.now_ms()
        async with self.sessions() as s:
            seen = set((await s.execute(select(TaxTransactionRow.dedupe_key)
                                        .where(TaxTransactionRow.owner_id == owner))).scalars())
            fresh = []
            for parsed in ready.rows:
                key = dedupe_key(parsed.tx)
                if key in seen:
                    continue
                seen.add(key)
                fresh.append(_row(owner, parsed.tx, key, ready.layout, now, parsed.line))
            s.add_all(fresh)
            await s.commit()
        return ImportSummary(ready.layout, ready.rows_read, len(fresh), len(ready.rows) - len(fresh), ready.rejected,
                             ready.ignored)

    async def transactions(self, owner: str) -> list[Transaction]:
        async with self.sessions() as s:
            rows = (await s.execute(select(TaxTransactionRow).where(TaxTransactionRow.owner_id == owner)
                                    .order_by(TaxTransactionRow.timestamp_ms, TaxTransactionRow.imported_at_ms,
                                              TaxTransactionRow.line))).scalars().all()
        return [_transaction(r) for r in rows]

    # ---- transfers between own accounts --------------------------------------------------------------------------

    async def _history(self, owner: str) -> tuple[list[Transaction], dict[str, str]]:
        """The owner's transactions and each one's row id by dedupe key."""
        async with self.sessions() as s:
            rows = (await s.execute(select(TaxTransactionRow).where(TaxTransactionRow.owner_id == owner)
                                    .order_by(TaxTransactionRow.timestamp_ms, TaxTransactionRow.imported_at_ms,
                                              TaxTransactionRow.line))).scalars().all()
        return [_transaction(r) for r in rows], {r.dedupe_key: r.id for r in rows}

    async def links(self, owner: str) -> TransferLinks:
        async with self.sessions() as s:
            rows = (await s.execute(select(TaxTransferLinkRow).where(TaxTransferLinkRow.owner_id == owner)
                                    .order_by(TaxTransferLinkRow.created_at_ms))).scalars().all()
        return TransferLinks({r.in_key: r.out_key for r in rows if r.decision == "confirmed"},
                             frozenset((r.out_key, r.in_key) for r in rows if r.decision == "undone"))

    async def transfers(self, owner: str) -> list[TransferView]:
        """Each transfer_in and the transfer_out it was matched with (by the user, or automatically), or none."""
        history, ids = await self._history(owner)
        matches: list[Match] = await asyncio.to_thread(transfer_matches, history, await self.links(owner))
        return [TransferView((ids[dedupe_key(m.received)], m.received),
                             None if m.sent is None else (ids[dedupe_key(m.sent)], m.sent), m.status)
                for m in matches]

    async def decide_transfer(self, owner: str, out_id: str, in_id: str, decision: str) -> None:
        """Confirm (`confirmed`) or undo (`undone`) that a transfer_out and a transfer_in are one transfer.
        NotYours for an id that is not the owner's transaction, NotATransfer naming the field for a wrong pair."""
        async with self.sessions() as s:
            found = {r.id: r for r in (await s.execute(select(TaxTransactionRow).where(
                TaxTransactionRow.owner_id == owner, TaxTransactionRow.id.in_([out_id, in_id])))).scalars()}
            if out_id not in found or in_id not in found:
                raise NotYours(out_id if out_id not in found else in_id)
            sent, received = found[out_id], found[in_id]
            if sent.type != "transfer_out":
                raise NotATransfer("out_id", f"transaction {out_id} is a {sent.type}, not a transfer_out")
            if received.type != "transfer_in":
                raise NotATransfer("in_id", f"transaction {in_id} is a {received.type}, not a transfer_in")
            if sent.asset != received.asset:
                raise NotATransfer("in_id", f"{received.asset} received cannot come from {sent.asset} sent")
            if decision == "confirmed" and sent.timestamp_ms > received.timestamp_ms:
                raise NotATransfer("in_id", "received before it was sent")
            mine = (TaxTransferLinkRow.owner_id == owner, TaxTransferLinkRow.in_key == received.dedupe_key)
            if decision == "confirmed":  # one confirmed source per transfer_in
                await s.execute(delete(TaxTransferLinkRow).where(*mine, TaxTransferLinkRow.decision == "confirmed"))
            await s.execute(delete(TaxTransferLinkRow).where(*mine, TaxTransferLinkRow.out_key == sent.dedupe_key))
            s.add(TaxTransferLinkRow(id=str(uuid.uuid4()), owner_id=owner, out_key=sent.dedupe_key,
                                     in_key=received.dedupe_key, decision=decision,
                                     created_at_ms=self.clock.now_ms()))
            await s.commit()

    # ---- reports ------------------------------------------------------------------------------------------------

    async def submit(self, owner: str, year: int, method: Method, per_wallet: bool) -> TaxReportRow:
        row = TaxReportRow(id=str(uuid.uuid4()), owner_id=owner, year=year, method=method.value,
                           per_wallet=per_wallet, status="queued", progress=0, created_at_ms=self.clock.now_ms())
        async with self.sessions() as s:
            s.add(row)
            await s.commit()
        self._running.add(row.id)
        task = asyncio.create_task(self._run(row.id, owner, year, method, per_wallet), name=f"tax-report:{row.id}")
        self._tasks.add(task)  # keep a reference: the loop only holds weak ones
        task.add_done_callback(self._tasks.discard)
        return row

    async def reports(self, owner: str, limit: int = 50) -> Sequence[TaxReportRow]:
        async with self.sessions() as s:
            return (await s.execute(select(TaxReportRow).where(TaxReportRow.owner_id == owner)
                                    .order_by(TaxReportRow.created_at_ms.desc()).limit(limit))).scalars().all()

    async def report(self, owner: str, report_id: str) -> TaxReportRow | None:
        async with self.sessions() as s:
            stmt = select(TaxReportRow).where(TaxReportRow.owner_id == owner, TaxReportRow.id == report_id)
            return (await s.execute(stmt)).scalar_one_or_none()

    async def wait(self) -> None:
        """Until every report started here has finished (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        interrupted = set(self._running)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for report_id in interrupted:
            await self._update(report_id, status="failed", error="interrupted: the server stopped; start it again",
                               finished_at_ms=self.clock.now_ms())

    async def _run(self, report_id: str, owner: str, year: int, method: Method, per_wallet: bool) -> None:
        try:
            await self._update(report_id, status="running", progress=5)
            history = await self.transactions(owner)
            links = await self.links(owner)
            await self._update(report_id, progress=30)
            values = await asyncio.to_thread(build_report, history, year, method, per_wallet, links)
            await self._update(report_id, status="done", progress=100, finished_at_ms=self.clock.now_ms(), **values)
            log.info("tax report done", report=report_id, transactions=len(history))
        except Exception as exc:  # a job's failure is its result: stored for the owner, never lost
            log.warning("tax report failed", report=report_id, error=str(exc))
            await self._update(report_id, status="failed", error=str(exc)[:500], finished_at_ms=self.clock.now_ms())
        finally:
            self._running.discard(report_id)

    async def _update(self, report_id: str, **values: Any) -> None:
        async with self.sessions() as s:
            row = await s.get(TaxReportRow, report_id)
            if row is None:
                return
            for key, value in values.items():
                setattr(row, key, value)
            await s.commit()


def build_report(history: list[Transaction], year: int, method: Method, per_wallet: bool,
                 links: TransferLinks | None = None) -> dict[str, Any]:
    """The stored result of a report: summary and the four CSVs (pure; runs in a worker thread)."""
    result = compute(history, method, per_wallet, links)
    start, end = year_bounds_ms(year)
    sold = in_year(result.disposals, start, end)
    income = [e for e in result.income if start <= e.received_ms < end]
    totals = schedule_d_totals(sold)
    summary = {
        "transactions": len(history),
        "disposals": len(sold),
        "disposals_missing_basis": sum(1 for d in sold if d.missing_basis),
        **{term.value: _money(totals[term]) for term in Term},
        "total": _money(tuple(a + b for a, b in zip(totals[Term.SHORT], totals[Term.LONG], strict=True))),
        "income_usd": str(cents(sum((e.value_usd for e in income), Decimal(0)))),
        "income_events": len(income),
    }
    return {"summary": summary, "form8949_csv": form_8949_csv(sold), "schedule_d_csv": schedule_d_csv(sold),
            "gains_csv": gains_csv(sold), "income_csv": income_csv(income)}


def _money(values: tuple[Decimal, ...]) -> dict[str, str]:
    proceeds, basis, gain = values
    return {"proceeds": str(proceeds), "cost_basis": str(basis), "gain_loss": str(gain)}


def _row(owner: str, tx: Transaction, key: str, source: str, now: int, line: int) -> TaxTransactionRow:
    return TaxTransactionRow(
        id=str(uuid.uuid4()), owner_id=owner, dedupe_key=key, timestamp_ms=tx.timestamp_ms, type=tx.type.value,
        asset=tx.asset, amount=str(tx.amount), price_usd=None if tx.price_usd is None else str(tx.price_usd),
        fee_usd=str(tx.fee_usd), account=tx.account, tx_id=tx.tx_id, source=source, imported_at_ms=now, line=line,
    )


def _transaction(r: TaxTransactionRow) -> Transaction:
    return Transaction(r.timestamp_ms, TxType(r.type), r.asset, Decimal(r.amount),
                       None if r.price_usd is None else Decimal(r.price_usd), Decimal(r.fee_usd), r.account, r.tx_id)
