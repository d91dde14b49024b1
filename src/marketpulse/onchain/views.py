"""The USDT payments API.

    GET  /api/v1/payments/usdt/chains               the chains USDT is accepted on
    POST /api/v1/payments/usdt/invoice              {chain, plan} or {chain, credit_pack}: address, exact amount, expiry
    GET  /api/v1/payments/usdt/invoices             your invoices, newest first, with their status and outcome
    GET  /api/v1/payments/usdt/invoice/{id}         one of your invoices
    POST /api/v1/payments/usdt/invoice/{id}/tx      {tx_hash}: verify your payment's transaction for the invoice
    GET  /dev/usdt/wallet                           `pulse demo` only: the demo wallet (address, USDT balance)
    POST /dev/usdt/pay                              `pulse demo` only: {invoice_id}: the demo wallet sends the
                                                    invoice's exact amount; the transaction's hash (submit it)
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketpulse.accounts.plans import UnknownPlan
from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import Principal
from marketpulse.accounts.views import current_user, require_scope
from marketpulse.api.pages import Cursor, Page, offset_of, page
from marketpulse.onchain.chain import ChainUnavailable
from marketpulse.onchain.core import Refused, UnknownProduct, display, product
from marketpulse.onchain.service import InvoiceClosed, InvoiceNotFound, TxUsed, UnknownChain, UsdtPayments
from marketpulse.onchain.tables import UsdtInvoiceRow

router = APIRouter(tags=["payments"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such invoice of yours"}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"description": "The chain's node can't be reached"}}


def get_usdt(request: Request) -> UsdtPayments:
    usdt: UsdtPayments = request.app.state.runtime.services.usdt
    return usdt


class ChainOut(BaseModel):
    name: str
    chain_id: int
    token: str
    receiving_address: str
    confirmations: int


class InvoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$", description="a chain's name")
    plan: str | None = Field(None, max_length=32, description="a paid plan: pro or elite (one month)")
    credit_pack: str | None = Field(None, max_length=32, description="a credit pack: credits_100 or credits_1000")

    @model_validator(mode="after")
    def _one(self) -> InvoiceBody:
        if (self.plan is None) == (self.credit_pack is None):
            raise ValueError("send either plan or credit_pack")
        return self


class TxBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tx_hash: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="the payment's transaction hash (0x + 64 hex)")


class InvoiceOut(BaseModel):
    id: str
    chain: str
    chain_id: int
    kind: str  # plan | credits
    product: str
    price_usd: float
    token: str
    receiving_address: str
    decimals: int
    amount: str  # send exactly this many USDT (every decimal counts: it names the invoice)
    amount_units: str  # the same in the token's smallest units
    status: str  # pending | confirming | paid | underpaid | late | expired
    expires_at_ms: int
    created_at_ms: int
    tx_hash: str | None
    paid: str | None  # USDT received
    credits_granted: int
    note: str  # what happened, in words (an under-, over- or late payment's outcome)
    settled_at_ms: int | None


class InvoicesOut(Page[InvoiceOut]):
    pass


def _out(usdt: UsdtPayments, row: UsdtInvoiceRow) -> InvoiceOut:
    return InvoiceOut(
        id=row.id, chain=row.chain, chain_id=row.chain_id, kind=row.kind, product=row.product,
        price_usd=row.price_cents / 100, token=row.token, receiving_address=row.receiving_address,
        decimals=row.decimals, amount=display(int(row.amount), row.decimals), amount_units=row.amount,
        status=usdt.shown_status(row), expires_at_ms=row.expires_at_ms, created_at_ms=row.created_at_ms,
        tx_hash=row.tx_hash, paid=display(int(row.paid_units), row.decimals) if row.paid_units else None,
        credits_granted=row.credits_granted, note=row.note, settled_at_ms=row.settled_at_ms)


def _field(field: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error",
                                    "input": value}])


def _unavailable(exc: ChainUnavailable) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc))


@router.get("/api/v1/payments/usdt/chains", response_model=Page[ChainOut])
async def chains(usdt: UsdtPayments = Depends(get_usdt)) -> Page[ChainOut]:
    """The chains USDT is accepted on."""
    return page([ChainOut(name=c.name, chain_id=c.config.chain_id, token=c.config.token.lower(),
                     receiving_address=c.config.receiving_address.lower(), confirmations=c.config.confirmations)
                 for c in usdt.clients.values()])


@router.post("/api/v1/payments/usdt/invoice", status_code=status.HTTP_201_CREATED, response_model=InvoiceOut,
             responses={**UNAUTHORIZED, **UNAVAILABLE})
async def create_invoice(body: InvoiceBody, request: Request, principal: Principal = Depends(current_user),
                         usdt: UsdtPayments = Depends(get_usdt)) -> InvoiceOut:
    """An invoice for a paid plan (one month) or a credit pack: send exactly `amount` USDT of `token` on `chain` to
    `receiving_address` before `expires_at_ms`. Under-, over- and late payments: see the invoice's `note`."""
    require_scope(request, principal)
    field = "plan" if body.plan is not None else "credit_pack"
    try:
        what = product(body.plan, body.credit_pack)
    except (UnknownProduct, UnknownPlan) as exc:
        raise _field(field, str(exc), body.plan or body.credit_pack) from None
    try:
        row = await usdt.create(principal.user.id, body.chain, what)
    except UnknownChain as exc:
        raise _field("chain", str(exc), body.chain) from None
    except ChainUnavailable as exc:
        raise _unavailable(exc) from None
    return _out(usdt, row)


@router.get("/api/v1/payments/usdt/invoices", response_model=InvoicesOut, responses=UNAUTHORIZED)
async def my_invoices(request: Request, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**7),
                      cursor: Cursor = None, principal: Principal = Depends(current_user),
                      usdt: UsdtPayments = Depends(get_usdt)) -> InvoicesOut:
    """Your USDT invoices, newest first, each with its status."""
    require_scope(request, principal)
    offset = offset_of(offset, cursor)
    rows = await usdt.invoices(principal.user.id, limit, offset)
    return InvoicesOut(data=[_out(usdt, r) for r in rows], next=str(offset + len(rows)) if len(rows) == limit else None)


@router.get("/api/v1/payments/usdt/invoice/{invoice_id}", response_model=InvoiceOut,
            responses={**UNAUTHORIZED, **NOT_FOUND})
async def my_invoice(invoice_id: str, request: Request, principal: Principal = Depends(current_user),
                     usdt: UsdtPayments = Depends(get_usdt)) -> InvoiceOut:
    """One of your USDT invoices."""
    require_scope(request, principal)
    try:
        return _out(usdt, await usdt.get(principal.user.id, invoice_id))
    except InvoiceNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no invoice {invoice_id}") from None


@router.post("/api/v1/payments/usdt/invoice/{invoice_id}/tx", response_model=InvoiceOut,
             responses={**UNAUTHORIZED, **NOT_FOUND, **UNAVAILABLE,
                        409: {"description": "The invoice has a transaction, or this one pays another invoice"}})
async def submit_tx(invoice_id: str, body: TxBody, request: Request, principal: Principal = Depends(current_user),
                    usdt: UsdtPayments = Depends(get_usdt)) -> InvoiceOut:
    """Your payment's transaction hash: verified on the invoice's chain (succeeded, the configured USDT contract,
    to the receiving address, the value), then `confirming` until buried under the chain's confirmations, then
    `paid`, `underpaid` or `late`. A transaction pays one invoice only."""
    require_scope(request, principal)
    try:
        row = await usdt.submit(principal.user.id, invoice_id, body.tx_hash)
    except InvoiceNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no invoice {invoice_id}") from None
    except (TxUsed, InvoiceClosed) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail={"field": "tx_hash", "message": str(exc)}) from None
    except Refused as exc:
        raise _field("tx_hash", str(exc), body.tx_hash) from None
    except ChainUnavailable as exc:
        raise _unavailable(exc) from None
    return _out(usdt, row)


# --- `pulse demo`: a wallet standing in for the user's -------------------------------------------------------------


class DemoWalletOut(BaseModel):
    chain: str
    address: str
    balance: str  # USDT


class DemoPayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_id: str = Field(min_length=1, max_length=36)


class DemoPayOut(BaseModel):
    tx_hash: str


def _demo_chain(usdt: UsdtPayments) -> Any:
    if usdt.dev_chain is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Not Found")
    return usdt.dev_chain


@router.get("/dev/usdt/wallet", response_model=DemoWalletOut, include_in_schema=False)
async def demo_wallet(request: Request, principal: Principal = Depends(current_user),
                      usdt: UsdtPayments = Depends(get_usdt)) -> DemoWalletOut:
    chain = _demo_chain(usdt)
    units = await asyncio.to_thread(chain.balance)
    return DemoWalletOut(chain="local", address=chain.wallet, balance=display(units, 6))


@router.post("/dev/usdt/pay", response_model=DemoPayOut, include_in_schema=False)
async def demo_pay(body: DemoPayBody, request: Request, principal: Principal = Depends(current_user),
                   usdt: UsdtPayments = Depends(get_usdt)) -> DemoPayOut:
    """The demo wallet sends the invoice's exact amount to its receiving address (the user then submits the hash,
    or the watcher finds it)."""
    require_scope(request, principal)
    chain = _demo_chain(usdt)
    try:
        row = await usdt.get(principal.user.id, body.invoice_id)
    except InvoiceNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no invoice {body.invoice_id}") from None
    if row.chain != "local":
        raise _field("invoice_id", "the demo wallet pays invoices on the demo's local chain only", body.invoice_id)
    return DemoPayOut(tx_hash=await asyncio.to_thread(chain.pay, int(row.amount), row.receiving_address))
