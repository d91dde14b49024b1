"""Tax over HTTP; every route needs a signed-in user (Bearer token, cookies with the CSRF header, or an API key with
`read` to look and `trade` to change) and sees that user's rows only: another user's report id answers 404.

    POST /api/v1/tax/transactions/import              multipart form, field `file`: a CSV (generic, Binance,
                                                      Coinbase or Kraken; see `tax.layouts`)
    POST /api/v1/tax/reports                          {year, method, per_wallet} → 202, a job
    GET  /api/v1/tax/reports                          the user's reports, newest first
    GET  /api/v1/tax/reports/{id}                     status, progress and summary
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
from marketpulse.services import Services, get_services
from marketpulse.tax.core import Method
from marketpulse.tax.csv_formats import RowError
from marketpulse.tax.pdf import form_8949_pdf as render_form_8949
from marketpulse.tax.service import ARTIFACTS, ImportSummary, TaxService
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


class ReportsOut(BaseModel):
    reports: list[ReportOut]


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
    return ReportsOut(reports=[_out(r) for r in await tax.reports(principal.user.id)])


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


# --- the page ------------------------------------------------------------------------------------------------------

page_router = APIRouter(include_in_schema=False)


@page_router.get("/tax", response_class=HTMLResponse)
async def tax_page() -> HTMLResponse:
    """Import, run a report (progress), summary, per-lot explanation and downloads."""
    from marketpulse.web.account_pages import render

    return render("Tax reports", template="tax.html", scripts=("tax.js",), narrow=False)
