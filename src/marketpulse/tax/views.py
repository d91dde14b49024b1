"""Tax over HTTP; every route needs a signed-in user (Bearer token, cookies with the CSRF header, or an API key with
`read` to look and `trade` to change) and sees that user's rows only: another user's report id answers 404.

    POST /api/v1/tax/transactions/import              multipart form, field `file`: a CSV (generic, Binance,
                                                      Coinbase or Kraken; see `tax.layouts`)
    POST /api/v1/tax/reports                          {year, method, per_wallet} → 202, a job
    GET  /api/v1/tax/reports                          the user's reports, newest first
    GET  /api/v1/tax/reports/{id}                     status, progress and summary
    GET  /api/v1/tax/transfers                        each transfer_in and the transfer_out it is matched with
    POST /api/v1/tax/transfers/confirm|undo           {out_id, in_id}: the user's decision on a match
    GET  /api/v1/tax/reports/{id}/form8949.csv        (also form8949.pdf, schedule-d.csv, gains.csv, income.csv)
                                                      once done
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import Principal
from marketpulse.accounts.views import current_user, require_scope
from marketpulse.api.pages import Page, page
from marketpulse.services import Services, get_services
from marketpulse.tax.core import Method, Transaction
from marketpulse.tax.csv_formats import RowError
from marketpulse.tax.pdf import form_8949_pdf as render_form_8949
from marketpulse.tax.service import ARTIFACTS, ImportSummary, NotATransfer, NotYours, TaxService, TransferView
from marketpulse.tax.tables import TaxReportRow

router = APIRouter(prefix="/api/v1/tax", tags=["tax"],
                   responses={**UNAUTHORIZED, 403: {"description": "The account or API key may not"}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such report of yours"}}


class RejectedOut(BaseModel):
    line: int
    field: str
    reason: str


class IgnoredOut(BaseModel):
    line: int
    reason: str


class ImportOut(BaseModel):
    layout: str = Field(description="the layout found from the header: generic, binance-trades, binance-history, "
                                    "coinbase, kraken-ledgers or kraken-trades")
    rows_read: int
    imported: int = Field(description="transactions stored (one exchange trade row can make a buy, a sell, a fee)")
    duplicates: int = Field(description="transactions already imported (or repeated in the file): skipped")
    rejected: list[RejectedOut] = Field(description="rows not imported: line (1 = the file's first) and reason")
    ignored: list[IgnoredOut] = Field(description="rows without a tax event (a fiat deposit, an internal move)")


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    year: int = Field(ge=2000, le=2099)
    method: Literal["fifo", "lifo", "hifo", "lofo"] = "fifo"
    per_wallet: bool = False


class ReportOut(BaseModel):
    id: str
    year: int
    method: str
    per_wallet: bool
    status: str = Field(description="queued, running, done or failed")
    progress: int = Field(description="percent")
    summary: dict[str, Any] | None
    error: str | None
    created_at_ms: int
    finished_at_ms: int | None
    files: list[str] = Field(description="downloads under this report's path once done")


class ReportsOut(Page[ReportOut]):
    pass


async def signed_in(request: Request, principal: Principal = Depends(current_user)) -> Principal:
    require_scope(request, principal)
    return principal


def get_tax(services: Services = Depends(get_services)) -> TaxService:
    return services.tax


DOWNLOADS = [*ARTIFACTS, "form8949.pdf"]


def _out(row: TaxReportRow) -> ReportOut:
    return ReportOut(id=row.id, year=row.year, method=row.method, per_wallet=row.per_wallet, status=row.status,
                     progress=row.progress, summary=row.summary, error=row.error, created_at_ms=row.created_at_ms,
                     finished_at_ms=row.finished_at_ms, files=DOWNLOADS if row.status == "done" else [])


def _import_out(summary: ImportSummary) -> ImportOut:
    return ImportOut(layout=summary.layout, rows_read=summary.rows_read, imported=summary.imported,
                     duplicates=summary.duplicates,
                     rejected=[RejectedOut(line=r.line, field=r.field, reason=r.reason) for r in summary.rejected],
                     ignored=[IgnoredOut(line=i.line, reason=i.reason) for i in summary.ignored])


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "type": "value_error", "msg": message, "input": None}])


INVALID_FILE: dict[int | str, dict[str, Any]] = {422: {
    "description": "No multipart `file` field, not UTF-8, or a header of no known layout (names `file`)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}}


UPLOAD = "A transactions CSV: the generic layout, or a Binance, Coinbase or Kraken export (found from its header)"


@router.post("/transactions/import", response_model=ImportOut, responses=INVALID_FILE)
async def import_transactions(file: UploadFile = File(description=UPLOAD),
                              account: str | None = Query(None, min_length=1, max_length=64,
                                                          description="Account for an exchange export's rows "
                                                          "(default: the exchange's name)"),
                              principal: Principal = Depends(signed_in),
                              tax: TaxService = Depends(get_tax)) -> ImportOut:
    """Rows read, imported, skipped as duplicates, ignored (no tax event, e.g. a fiat deposit) and rejected with
    line and reason; importing the same file twice changes nothing."""
    try:
        text = (await file.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("file", "the file is not UTF-8 text") from None
    try:
        summary = await tax.import_file(principal.user.id, text, account)
    except RowError as exc:
        raise _invalid("file", f"line {exc.line}: {exc.field}: {exc.message}") from None
    return _import_out(summary)


@router.post("/reports", response_model=ReportOut, status_code=status.HTTP_202_ACCEPTED)
async def create_report(body: ReportIn, principal: Principal = Depends(signed_in),
                        tax: TaxService = Depends(get_tax)) -> ReportOut:
    return _out(await tax.submit(principal.user.id, body.year, Method(body.method), body.per_wallet))


@router.get("/reports", response_model=ReportsOut)
async def list_reports(principal: Principal = Depends(signed_in), tax: TaxService = Depends(get_tax)) -> ReportsOut:
    return ReportsOut(data=[_out(r) for r in await tax.reports(principal.user.id)])


@router.get("/reports/{report_id}", response_model=ReportOut, responses=NOT_FOUND)
async def get_report(report_id: str, principal: Principal = Depends(signed_in),
                     tax: TaxService = Depends(get_tax)) -> ReportOut:
    row = await tax.report(principal.user.id, report_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no report {report_id}")
    return _out(row)


CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The CSV"},
    409: {"description": "The report is not done yet (or failed)"},
    **NOT_FOUND,
}


async def _download(name: str, report_id: str, owner: str, tax: TaxService) -> Response:
    row = await tax.report(owner, report_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no report {report_id}")
    text = getattr(row, ARTIFACTS[name])
    if row.status != "done" or text is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"report {report_id} is {row.status}")
    filename = f"tax-{row.year}-{row.method}-{name}"
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/reports/{report_id}/form8949.csv", response_class=Response, responses=CSV_RESPONSE)
async def form_8949(report_id: str, principal: Principal = Depends(signed_in),
                    tax: TaxService = Depends(get_tax)) -> Response:
    """IRS Form 8949 lines: one per lot a disposal consumed, short-term part first."""
    return await _download("form8949.csv", report_id, principal.user.id, tax)


PDF_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
          "description": "The filled Form 8949"},
    409: {"description": "The report is not done yet (or failed)"},
    **NOT_FOUND,
}


@router.get("/reports/{report_id}/form8949.pdf", response_class=Response, responses=PDF_RESPONSE)
async def form_8949_pdf(report_id: str, principal: Principal = Depends(signed_in),
                        tax: TaxService = Depends(get_tax)) -> Response:
    """IRS Form 8949 filled in: Part I (box C) and Part II (box F), 14 lines a page with each page's totals."""
    row = await tax.report(principal.user.id, report_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no report {report_id}")
    if row.status != "done" or row.form8949_csv is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"report {report_id} is {row.status}")
    name = principal.user.email or principal.user.id
    data = await asyncio.to_thread(render_form_8949, row.form8949_csv, year=row.year, name=name)
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="tax-{row.year}-{row.method}-form8949.pdf"'})


@router.get("/reports/{report_id}/schedule-d.csv", response_class=Response, responses=CSV_RESPONSE)
async def schedule_d(report_id: str, principal: Principal = Depends(signed_in),
                     tax: TaxService = Depends(get_tax)) -> Response:
    """Schedule D totals per term, summed from the Form 8949 lines as printed."""
    return await _download("schedule-d.csv", report_id, principal.user.id, tax)


@router.get("/reports/{report_id}/gains.csv", response_class=Response, responses=CSV_RESPONSE)
async def gains(report_id: str, principal: Principal = Depends(signed_in),
                tax: TaxService = Depends(get_tax)) -> Response:
    """Every disposal of the year with each lot it consumed (dates, amounts, bases), at full precision."""
    return await _download("gains.csv", report_id, principal.user.id, tax)


@router.get("/reports/{report_id}/income.csv", response_class=Response, responses=CSV_RESPONSE)
async def income(report_id: str, principal: Principal = Depends(signed_in),
                 tax: TaxService = Depends(get_tax)) -> Response:
    """The year's income events at market value."""
    return await _download("income.csv", report_id, principal.user.id, tax)


# --- transfers between own accounts ---------------------------------------------------------------------------------


class TransactionOut(BaseModel):
    id: str
    timestamp_ms: int
    type: str
    asset: str
    amount: str = Field(description="decimal text")
    account: str
    tx_id: str


class TransferOut(BaseModel):
    received: TransactionOut = Field(description="the transfer_in")
    sent: TransactionOut | None = Field(description="the transfer_out it came from; null: taxed as a deposit")
    status: str = Field(description="confirmed (by you), auto (same tx_id, or the 24 h amount rule) or unmatched")


class TransferDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_id: str = Field(min_length=1, max_length=36, description="the transfer_out transaction's id")
    in_id: str = Field(min_length=1, max_length=36, description="the transfer_in transaction's id")


def _tx_out(pair: tuple[str, Transaction]) -> TransactionOut:
    tx_row_id, tx = pair
    return TransactionOut(id=tx_row_id, timestamp_ms=tx.timestamp_ms, type=tx.type.value, asset=tx.asset,
                          amount=format(tx.amount.normalize(), "f"), account=tx.account, tx_id=tx.tx_id)


def _transfer_out(view: TransferView) -> TransferOut:
    return TransferOut(received=_tx_out(view.received), sent=None if view.sent is None else _tx_out(view.sent),
                       status=view.status)


DECISION_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such transaction of yours"},
    422: {"description": "Not a transfer_out and a transfer_in of one asset, sent before received (names the field)",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}},
}


@router.get("/transfers", response_model=Page[TransferOut])
async def list_transfers(principal: Principal = Depends(signed_in),
                         tax: TaxService = Depends(get_tax)) -> Page[TransferOut]:
    """Every transfer_in and the transfer_out it is matched with, in time order: what the reports will use."""
    return page([_transfer_out(v) for v in await tax.transfers(principal.user.id)])


async def _decide(body: TransferDecisionIn, owner: str, tax: TaxService, decision: str) -> Page[TransferOut]:
    try:
        await tax.decide_transfer(owner, body.out_id, body.in_id, decision)
    except NotYours as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no transaction {exc.args[0]}") from None
    except NotATransfer as exc:
        raise _invalid(exc.field, str(exc)) from None
    views = [v for v in await tax.transfers(owner) if v.received[0] == body.in_id]
    return page([_transfer_out(v) for v in views])


@router.post("/transfers/confirm", response_model=Page[TransferOut], responses=DECISION_ERRORS)
async def confirm_transfer(body: TransferDecisionIn, principal: Principal = Depends(signed_in),
                           tax: TaxService = Depends(get_tax)) -> Page[TransferOut]:
    """These two are one transfer between my accounts: the lots move with their basis (reports made from now on).
    Answers the transfer_in's match as it now stands."""
    return await _decide(body, principal.user.id, tax, "confirmed")


@router.post("/transfers/undo", response_model=Page[TransferOut], responses=DECISION_ERRORS)
async def undo_transfer(body: TransferDecisionIn, principal: Principal = Depends(signed_in),
                        tax: TaxService = Depends(get_tax)) -> Page[TransferOut]:
    """These two are not one transfer: never match them (the transfer_in is then a deposit unless another
    transfer_out fits). Answers the transfer_in's match as it now stands."""
    return await _decide(body, principal.user.id, tax, "undone")


# --- the page ------------------------------------------------------------------------------------------------------

page_router = APIRouter(include_in_schema=False)


@page_router.get("/tax", response_class=HTMLResponse)
async def tax_page() -> HTMLResponse:
    """Import, run a report (progress), summary, per-lot explanation and downloads."""
    from marketpulse.web.account_pages import render

    return render("Tax reports", template="tax.html", scripts=("tax.js",), narrow=False)
