"""The credits API.

    GET  /api/v1/account/credits                 your balance and your ledger, newest first (`limit`, `offset`)
    POST /api/v1/admin/users/{id}/credits        administrators: {amount, kind: grant|adjustment, reason}, audited

Any API action that needs credits raises `credits.core.InsufficientCredits` (or calls `ChargeResult.require()`):
the app answers 402 with the balance and the cost (`api.errors`).
"""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.accounts.admin_views import admin_address, require_admin
from marketpulse.accounts.schemas import UNAUTHORIZED
from marketpulse.accounts.service import AccountsService, Principal
from marketpulse.accounts.tables import UserRow
from marketpulse.accounts.views import current_user, get_accounts, require_scope
from marketpulse.api.pages import Cursor, Page, next_offset, offset_of
from marketpulse.credits.core import Kind
from marketpulse.credits.service import CreditLedger
from marketpulse.credits.tables import CreditEntryRow

router = APIRouter(tags=["credits"])

MAX_AMOUNT = 1_000_000_000


def get_credits(request: Request) -> CreditLedger:
    ledger: CreditLedger = request.app.state.runtime.services.credits
    return ledger


class CreditEntryOut(BaseModel):
    id: int
    kind: str  # grant | purchase | usage | refund | adjustment
    amount: int  # signed: usage is negative
    balance_after: int
    reason: str
    created_at_ms: int


class CreditsOut(Page[CreditEntryOut]):
    """`data`: the ledger's entries, newest first."""

    balance: int
    total: int  # entries in all
    limit: int
    offset: int


class AdminCreditBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="credits: a grant's is positive, an "
                                                                    "adjustment's signed (never below zero)")
    kind: Literal["grant", "adjustment"]
    reason: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")


class AdminCreditOut(BaseModel):
    balance: int
    entry: CreditEntryOut


def _entry(row: CreditEntryRow) -> CreditEntryOut:
    return CreditEntryOut(id=row.id, kind=row.kind, amount=row.amount, balance_after=row.balance_after,
                          reason=row.reason, created_at_ms=row.created_at_ms)


def _amount_error(message: str, value: int) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", "amount"), "msg": message, "type": "value_error",
                                    "input": value}])


@router.get("/api/v1/account/credits", response_model=CreditsOut, responses=UNAUTHORIZED)
async def my_credits(request: Request, limit: int = Query(50, ge=1, le=500),
                     offset: int = Query(0, ge=0, le=10_000_000), cursor: Cursor = None,
                     principal: Principal = Depends(current_user),
                     ledger: CreditLedger = Depends(get_credits)) -> CreditsOut:
    """Your credit balance and ledger (grants, purchases, usage, refunds, adjustments), newest first."""
    require_scope(request, principal)
    offset = offset_of(offset, cursor)
    balance, rows, total = await ledger.history(principal.user.id, limit=limit, offset=offset)
    return CreditsOut(data=[_entry(r) for r in rows], next=next_offset(offset, len(rows), total), balance=balance,
                      total=total, limit=limit, offset=offset)


@router.post("/api/v1/admin/users/{user_id}/credits", status_code=status.HTTP_201_CREATED,
             response_model=AdminCreditOut, dependencies=[Depends(admin_address)], responses={
                 **UNAUTHORIZED, 404: {"description": "No such user"}})
async def admin_credits(user_id: str, body: AdminCreditBody, request: Request,
                        admin: Principal = Depends(require_admin), ledger: CreditLedger = Depends(get_credits),
                        accounts: AccountsService = Depends(get_accounts)) -> AdminCreditOut:
    """Grant a user credits, or adjust their balance either way (not below zero); recorded in the audit log. Like
    every admin route, only from `PULSE_ADMIN_ALLOWED_IPS` when that is set."""
    kind = Kind(body.kind)
    if body.amount == 0 or (kind == Kind.GRANT and body.amount < 0):
        raise _amount_error("a grant needs a positive amount, an adjustment a non-zero one", body.amount)
    async with ledger.sessions() as s:
        if await s.get(UserRow, user_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no user {user_id}")
        result = await ledger.grant(s, owner_id=user_id, amount=body.amount, kind=kind, reason=body.reason,
                                    idempotency_key=f"admin:{uuid.uuid4()}", actor_id=admin.user.id)
        if not result.ok:
            raise _amount_error(f"the balance is {result.balance}: it can't go below zero", body.amount)
        s.add(accounts.audit.entry(
            "admin.credits_granted" if kind == Kind.GRANT else "admin.credits_adjusted", actor_id=admin.user.id,
            target_type="user", target_id=user_id, old={"balance": result.balance - body.amount},
            new={"balance": result.balance, "amount": body.amount, "kind": kind.value, "reason": body.reason},
            client=request.client.host if request.client else None))
        await s.commit()
        entry = await s.get(CreditEntryRow, result.entry_id)
    assert entry is not None
    return AdminCreditOut(balance=result.balance, entry=_entry(entry))
