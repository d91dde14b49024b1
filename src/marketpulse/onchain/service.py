"""USDT invoices over the database and the chains: create, list, take a transaction hash, settle, watch.

An invoice moves pending → confirming (a transfer was found: by the user's hash or by the watcher) → paid,
underpaid or late (`core.judge`) once the transfer is buried under the chain's confirmations. Until then every
check reads the receipt again, so a reorganisation that drops the transaction sends the invoice back to pending.
Settling is one transaction: the invoice's final status, the credits (ledger key `usdt:{invoice}`) and the plan
change (`AccountsService.change_user`: audited, announced), so nothing is granted twice however many times
settling runs.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketpulse.accounts.service import AccountsService
from marketpulse.accounts.tables import UserRow
from marketpulse.clock import Clock
from marketpulse.credits.core import Kind
from marketpulse.credits.service import CreditLedger
from marketpulse.onchain.chain import ChainClient, Receipt
from marketpulse.onchain.core import (
    OFFSET_SLOTS,
    Product,
    Refused,
    Status,
    invoice_amount,
    judge,
    paid_value,
)
from marketpulse.onchain.tables import UsdtCursorRow, UsdtInvoiceRow, UsdtPlanTermRow
from marketpulse.payments import debt
from marketpulse.settings import Settings

if TYPE_CHECKING:
    from marketpulse.onchain.demo import DemoChain

log = structlog.get_logger(__name__)

SLOT_TRIES = 8
FIRST_SCAN_BLOCKS = 5_000  # a new cursor starts this far back (an invoice is young when the watcher first runs)
MAX_SCAN_BLOCKS = 2_000  # blocks per eth_getLogs call (nodes cap the range)
PLAN_PERIOD_MS = 30 * 86_400_000  # a plan invoice pays this long
TERMS_LEASE = "usdt-plan-terms"
TERMS_CHECK_EVERY_MS = 60_000


class InvoiceNotFound(LookupError):
    pass


class InvoiceClosed(ValueError):
    """The invoice already has its transfer (or is settled)."""


class TxUsed(ValueError):
    """The transaction already pays another invoice."""


class UnknownChain(ValueError):
    pass


@dataclass(frozen=True)
class Found:
    value: int
    block_number: int


class UsdtPayments:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings,
                 accounts: AccountsService, credits: CreditLedger,
                 clients: Mapping[str, ChainClient] | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.accounts = accounts
        self.credits = credits
        self.ttl_ms = settings.usdt_invoice_ttl_s * 1000
        self.clients = dict(clients) if clients is not None else {
            name: ChainClient(name, cfg) for name, cfg in settings.usdt_chains.items()}
        self.dev_chain: DemoChain | None = None  # `pulse demo`'s local chain and demo wallet, stopped with this

    async def close(self) -> None:
        if self.dev_chain is not None:
            await self.dev_chain.stop()
            self.dev_chain = None
        for client in self.clients.values():
            await client.close()

    def client(self, chain: str) -> ChainClient:
        try:
            return self.clients[chain]
        except KeyError:
            raise UnknownChain(f"USDT is not accepted on {chain!r}: one of {', '.join(self.clients) or 'none'}") \
                from None

    # --- invoices ---

    async def create(self, user_id: str, chain: str, product: Product) -> UsdtInvoiceRow:
        """A new invoice whose amount no other open invoice on the chain has."""
        client = self.client(chain)
        decimals = await client.decimals()
        now = self.clock.now_ms()
        for _ in range(SLOT_TRIES):
            async with self.sessions() as s:
                taken = set((await s.execute(select(UsdtInvoiceRow.amount).where(
                    UsdtInvoiceRow.chain == chain,
                    UsdtInvoiceRow.status.in_([Status.PENDING, Status.CONFIRMING])))).scalars())
                free = [n for n in (secrets.randbelow(OFFSET_SLOTS) + 1 for _ in range(32))
                        if str(invoice_amount(product.price_cents, decimals, n)) not in taken]
                if not free:
                    continue
                row = UsdtInvoiceRow(
                    id=str(uuid.uuid4()), owner_id=user_id, chain=chain, chain_id=client.config.chain_id,
                    kind=product.kind, product=product.name, price_cents=product.price_cents,
                    pack_credits=product.credits, token=client.config.token.lower(),
                    receiving_address=client.config.receiving_address.lower(), decimals=decimals,
                    amount=str(invoice_amount(product.price_cents, decimals, free[0])), status=Status.PENDING,
                    credits_granted=0, note="", created_at_ms=now, expires_at_ms=now + self.ttl_ms)
                s.add(row)
                try:
                    await s.commit()
                except IntegrityError:  # another request took the amount a moment ago: draw again
                    continue
                return row
        raise RuntimeError("no free amount for a new invoice: too many open invoices at this price")

    async def invoices(self, user_id: str, limit: int, offset: int) -> list[UsdtInvoiceRow]:
        async with self.sessions() as s:
            return list((await s.execute(select(UsdtInvoiceRow).where(UsdtInvoiceRow.owner_id == user_id).order_by(
                UsdtInvoiceRow.created_at_ms.desc(), UsdtInvoiceRow.id).limit(limit).offset(offset))).scalars())

    async def get(self, user_id: str, invoice_id: str) -> UsdtInvoiceRow:
        async with self.sessions() as s:
            row = await s.get(UsdtInvoiceRow, invoice_id)
        if row is None or row.owner_id != user_id:
            raise InvoiceNotFound(invoice_id)
        return row

    def shown_status(self, row: UsdtInvoiceRow) -> str:
        if row.status == Status.PENDING and self.clock.now_ms() > row.expires_at_ms:
            return Status.EXPIRED.value
        return row.status

    # --- a transaction hash from the user ---

    async def submit(self, user_id: str, invoice_id: str, tx_hash: str) -> UsdtInvoiceRow:
        """Verify the user's transaction for their invoice, attach it, and settle it when confirmed."""
        tx_hash = tx_hash.lower()
        row = await self.get(user_id, invoice_id)
        if row.tx_hash == tx_hash:
            return await self.settle(row.id)  # the same hash again: just look again
        if row.status != Status.PENDING:
            raise InvoiceClosed(f"the invoice is {row.status} with transaction {row.tx_hash}")
        async with self.sessions() as s:
            if await s.scalar(select(UsdtInvoiceRow.id).where(UsdtInvoiceRow.chain == row.chain,
                                                              UsdtInvoiceRow.tx_hash == tx_hash)) is not None:
                raise TxUsed("this transaction already pays an invoice")
        receipt = await self.client(row.chain).receipt(tx_hash)
        if receipt is None:
            raise Refused("no such transaction on this chain (or not mined yet): send it again once it is mined")
        found = self._found(row, receipt)
        await self._attach(row, tx_hash, found)
        return await self.settle(row.id)

    def _found(self, row: UsdtInvoiceRow, receipt: Receipt) -> Found:
        return Found(paid_value(receipt.succeeded, receipt.logs, row.token, row.receiving_address),
                     receipt.block_number)

    async def _attach(self, row: UsdtInvoiceRow, tx_hash: str, found: Found) -> bool:
        """pending → confirming with the transfer; False when someone else attached one first."""
        async with self.sessions() as s:
            try:
                done = await s.execute(update(UsdtInvoiceRow).where(
                    UsdtInvoiceRow.id == row.id, UsdtInvoiceRow.status == Status.PENDING).values(
                    status=Status.CONFIRMING, tx_hash=tx_hash, block_number=found.block_number,
                    paid_units=str(found.value)))
                await s.commit()
            except IntegrityError:  # (chain, tx_hash) is unique: the transaction pays another invoice
                raise TxUsed("this transaction already pays an invoice") from None
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise InvoiceClosed("the invoice has just been given another transaction")
        return True

    # --- confirmations, outcome ---

    async def settle(self, invoice_id: str) -> UsdtInvoiceRow:
        """Look at a confirming invoice's transaction again: back to pending if the chain dropped it, settled once
        buried under the confirmations, else unchanged."""
        async with self.sessions() as s:
            row = await s.get(UsdtInvoiceRow, invoice_id)
        assert row is not None
        if row.status != Status.CONFIRMING or row.tx_hash is None:
            return row
        client = self.client(row.chain)
        receipt = await client.receipt(row.tx_hash)
        if receipt is None:  # reorganised away before it was buried deep enough
            await self._reopen(row, "the transaction left the chain (reorganisation): waiting for a payment")
            return await self.get(row.owner_id, row.id)
        try:
            found = self._found(row, receipt)
        except Refused as exc:  # a reorganisation re-mined something else under this hash: unlikely, but honest
            await self._reopen(row, str(exc))
            return await self.get(row.owner_id, row.id)
        if await client.latest() - found.block_number + 1 < client.config.confirmations:
            await self._update(row.id, block_number=found.block_number, paid_units=str(found.value))
            return await self.get(row.owner_id, row.id)
        await self._finish(row, found, await client.block_time_ms(found.block_number))
        return await self.get(row.owner_id, row.id)

    async def settle_all(self, chain: str) -> None:
        async with self.sessions() as s:
            ids = list((await s.execute(select(UsdtInvoiceRow.id).where(
                UsdtInvoiceRow.chain == chain, UsdtInvoiceRow.status == Status.CONFIRMING))).scalars())
        for invoice_id in ids:
            await self.settle(invoice_id)

    async def _reopen(self, row: UsdtInvoiceRow, note: str) -> None:
        await self._update(row.id, status=Status.PENDING, tx_hash=None, block_number=None, paid_units=None,
                           note=note)

    async def _update(self, invoice_id: str, **values: object) -> None:
        async with self.sessions() as s:
            await s.execute(update(UsdtInvoiceRow).where(UsdtInvoiceRow.id == invoice_id,
                                                         UsdtInvoiceRow.status == Status.CONFIRMING).values(**values))
            await s.commit()

    async def _finish(self, row: UsdtInvoiceRow, found: Found, mined_at_ms: int) -> None:
        outcome = judge(kind=row.kind, name=row.product, pack_credits=row.pack_credits, amount=int(row.amount),
                        value=found.value, decimals=row.decimals, mined_at_ms=mined_at_ms,
                        expires_at_ms=row.expires_at_ms)
        now = self.clock.now_ms()
        changed: dict[str, str] = {}
        async with self.sessions() as s:
            done = await s.execute(update(UsdtInvoiceRow).where(
                UsdtInvoiceRow.id == row.id, UsdtInvoiceRow.status == Status.CONFIRMING).values(
                status=outcome.status, paid_units=str(found.value), block_number=found.block_number,
                credits_granted=outcome.grant_credits, note=outcome.note, settled_at_ms=now))
            if done.rowcount != 1:  # type: ignore[attr-defined]  # settled by another check meanwhile
                return
            if outcome.grant_credits:
                await self.credits.grant(s, owner_id=row.owner_id, amount=outcome.grant_credits, kind=Kind.PURCHASE,
                                         idempotency_key=f"usdt:{row.id}",
                                         reason=f"USDT invoice {row.id} ({row.product}): {outcome.status}")
                await debt.pay_down(s, self.credits, owner_id=row.owner_id, credits=outcome.grant_credits,
                                    key=f"usdt:{row.id}")  # a card refund's debt is paid first
            user = await s.get(UserRow, row.owner_id)
            if outcome.change_plan and user is not None:  # the one plan-change function: audited, announced
                ends = await self._extend_term(s, row, outcome.change_plan, now)
                changed = self.accounts.change_user(
                    s, user, {"plan": outcome.change_plan}, action="payments.usdt_plan_changed", actor_id=None,
                    note={"invoice": row.id, "tx_hash": row.tx_hash or "", "paid_until_ms": str(ends)})
            await s.commit()
        log.info("usdt invoice settled", invoice=row.id, status=outcome.status, credits=outcome.grant_credits)
        if user is not None:  # after the commit: a listener reading the user sees the change
            await self.accounts.announce_user_change(user, changed)

    # --- plans paid in USDT: a paid period, renewed by a new invoice, then free ---

    async def _extend_term(self, s: AsyncSession, row: UsdtInvoiceRow, plan: str, now: int) -> int:
        """A paid plan invoice: a new period, following on from a running one of the same plan; its end."""
        term = await s.get(UsdtPlanTermRow, row.owner_id)
        running = term is not None and term.ended_at_ms is None and term.ends_at_ms > now and term.plan == plan
        if term is None:
            term = UsdtPlanTermRow(owner_id=row.owner_id, plan=plan, starts_at_ms=now, ends_at_ms=now,
                                   last_invoice_id=row.id, updated_at_ms=now)
            s.add(term)
        start = term.ends_at_ms if running else now
        if not running:
            term.starts_at_ms = now
        term.plan, term.ends_at_ms, term.ended_at_ms = plan, start + PLAN_PERIOD_MS, None
        term.last_invoice_id, term.updated_at_ms = row.id, now
        return term.ends_at_ms

    async def paid_until(self, owner_id: str) -> tuple[str, int] | None:
        """The plan paid in USDT and when its paid period ends, while it runs."""
        async with self.sessions() as s:
            term = await s.get(UsdtPlanTermRow, owner_id)
        if term is None or term.ended_at_ms is not None:
            return None
        return term.plan, term.ends_at_ms

    async def expire_terms(self) -> int:
        """End every USDT-paid period that ran out unrenewed: the plan drops to free (through `change_user`:
        audited, announced) unless a card subscription or an administrator gave another plan since; the user is
        mailed. How many plans dropped. Runs on the holder of the `usdt-plan-terms` lease."""
        from marketpulse.accounts.plans import DEFAULT_PLAN
        from marketpulse.payments.core import PLAN_GIVING
        from marketpulse.payments.tables import StripeSubscriptionRow

        now = self.clock.now_ms()
        dropped: list[tuple[UserRow, dict[str, str]]] = []
        async with self.sessions() as s:
            due = list((await s.execute(select(UsdtPlanTermRow).where(
                UsdtPlanTermRow.ended_at_ms.is_(None), UsdtPlanTermRow.ends_at_ms <= now))).scalars())
            for term in due:
                term.ended_at_ms, term.updated_at_ms = now, now
                user = await s.get(UserRow, term.owner_id)
                card = await s.scalar(select(StripeSubscriptionRow.subscription_id).where(
                    StripeSubscriptionRow.owner_id == term.owner_id,
                    StripeSubscriptionRow.status.in_(PLAN_GIVING)).limit(1))
                if user is None or user.plan != term.plan or card is not None:
                    continue
                changed = self.accounts.change_user(s, user, {"plan": DEFAULT_PLAN},
                                                    action="payments.usdt_plan_expired", actor_id=None,
                                                    note={"invoice": term.last_invoice_id})
                dropped.append((user, changed))
            await s.commit()
        for user, changed in dropped:
            await self.accounts.announce_user_change(user, changed)
            if user.email:
                await self.accounts.mailer.send(user.email, "Your marketpulse plan is now free", (
                    "The period you paid in USDT has ended, so your plan is now free. Pay a new USDT invoice (or "
                    "subscribe by card) in Settings > Billing to have it back."), kind="billing")
        return len(dropped)

    # --- the watcher ---

    async def watch(self, chain: str) -> int:
        """Read the confirmed blocks since the last look for transfers to the receiving address, match them to
        invoices by amount, then settle what is confirming; how many transfers were matched."""
        client = self.client(chain)
        safe = await client.latest() - client.config.confirmations + 1  # newest block buried deep enough
        async with self.sessions() as s:
            cursor = await s.get(UsdtCursorRow, chain)
        start = (cursor.block + 1) if cursor is not None else max(0, safe - FIRST_SCAN_BLOCKS)
        matched = 0
        while start <= safe:
            end = min(safe, start + MAX_SCAN_BLOCKS - 1)
            for entry in await client.transfers_in(start, end):
                matched += await self._match(chain, entry.tx_hash, entry.block_number)
            await self._advance(chain, end)
            start = end + 1
        await self.settle_all(chain)
        return matched

    async def _match(self, chain: str, tx_hash: str, block_number: int) -> int:
        async with self.sessions() as s:
            if await s.scalar(select(UsdtInvoiceRow.id).where(UsdtInvoiceRow.chain == chain,
                                                              UsdtInvoiceRow.tx_hash == tx_hash)) is not None:
                return 0  # the user submitted it already
        receipt = await self.client(chain).receipt(tx_hash)
        if receipt is None:
            return 0
        try:
            value = paid_value(receipt.succeeded, receipt.logs, self.client(chain).config.token,
                               self.client(chain).config.receiving_address)
        except Refused:
            return 0
        async with self.sessions() as s:
            # an open invoice of exactly that amount; else an expired one (the payment is late)
            rows = list((await s.execute(select(UsdtInvoiceRow).where(
                UsdtInvoiceRow.chain == chain, UsdtInvoiceRow.status == Status.PENDING,
                UsdtInvoiceRow.amount == str(value)).order_by(UsdtInvoiceRow.expires_at_ms.desc()))).scalars())
        if not rows:
            log.warning("usdt transfer matches no invoice", chain=chain, tx_hash=tx_hash, value=value)
            return 0
        try:
            await self._attach(rows[0], tx_hash, Found(value, block_number))
        except (TxUsed, InvoiceClosed):
            return 0
        return 1

    async def _advance(self, chain: str, block: int) -> None:
        async with self.sessions() as s:
            cursor = await s.get(UsdtCursorRow, chain)
            if cursor is None:
                s.add(UsdtCursorRow(chain=chain, block=block))
            else:
                cursor.block = max(cursor.block, block)
            await s.commit()

