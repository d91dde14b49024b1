"""USDT invoices' pure rules (no I/O): the price in token units, the unique amount, and what a transfer means.

An invoice's amount is its price in the token's smallest units plus a small offset in the last decimals, different
from every other open invoice on the chain, so a transfer of exactly that amount names its invoice without a memo.
The offset stays below one cent whatever the token's decimals.

Outcomes of a transfer found for an invoice (whoever found it: the user's hash or the watcher):
    paid       value ≥ amount, mined before the expiry: the plan changes or the pack's credits are granted; an
               excess worth at least one credit is granted as credits (1 credit = $0.10)
    underpaid  value < amount: nothing is bought; what arrived is granted as credits (floor, $0.10 each)
    late       mined after the expiry: nothing is bought; what arrived is granted as credits
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from marketpulse.accounts.plans import CREDIT_PACKS, plan_named

CREDIT_USD = Decimal("0.10")  # seed 004: 1 credit = $0.10
OFFSET_SLOTS = 9_999  # offsets 1…9999 in units of 10^-6 USD (for 6 decimals): always under a cent
# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


class Status(StrEnum):
    PENDING = "pending"  # waiting for a transfer
    CONFIRMING = "confirming"  # a transfer was found, not yet buried under enough blocks
    PAID = "paid"
    UNDERPAID = "underpaid"
    LATE = "late"
    EXPIRED = "expired"  # shown for a pending invoice past its expiry (a late transfer may still come)


FINAL = frozenset({Status.PAID, Status.UNDERPAID, Status.LATE})


class UnknownProduct(ValueError):
    pass


@dataclass(frozen=True)
class Product:
    kind: str  # plan | credits
    name: str
    price_cents: int
    credits: int  # a pack's credits; 0 for a plan


def product(plan: str | None, credit_pack: str | None) -> Product:
    """What an invoice sells: a paid plan (one month at its price) or a credit pack."""
    if plan is not None:
        p = plan_named(plan)
        if not p.price_per_month_usd:
            raise UnknownProduct(f"{p.name} can't be bought with USDT: pick a paid plan")
        return Product("plan", p.name, round(p.price_per_month_usd * 100), 0)
    for pack in CREDIT_PACKS:
        if pack.name == (credit_pack or "").strip().lower():
            return Product("credits", pack.name, round(pack.price_usd * 100), pack.credits)
    names = ", ".join(p.name for p in CREDIT_PACKS)
    raise UnknownProduct(f"unknown credit pack {credit_pack!r}: one of {names}")


def cents_units(cents: int, decimals: int) -> int:
    """`cents` of a dollar in units of a dollar-pegged token with `decimals`."""
    if decimals < 2:
        raise ValueError("a USD token needs at least 2 decimals")
    return cents * 10 ** (decimals - 2)


def offset_step(decimals: int) -> int:
    """One step of the unique offset: 10^-6 USD, or the token's smallest unit when it has fewer decimals."""
    return 10 ** max(0, decimals - 6)


def invoice_amount(cents: int, decimals: int, slot: int) -> int:
    """The amount of the invoice holding offset `slot` (1…OFFSET_SLOTS)."""
    if not 1 <= slot <= OFFSET_SLOTS:
        raise ValueError("slot out of range")
    return cents_units(cents, decimals) + slot * offset_step(decimals)


def display(units: int, decimals: int) -> str:
    """Token units as a decimal text with every decimal (what the wallet must send)."""
    return f"{Decimal(units).scaleb(-decimals):.{decimals}f}"


def credits_worth(units: int, decimals: int) -> int:
    """Whole credits `units` of the token buy (floor)."""
    return int(Decimal(units).scaleb(-decimals) // CREDIT_USD)


@dataclass(frozen=True)
class Outcome:
    status: Status
    grant_credits: int  # credits granted (a pack's, an excess's, or what arrived when nothing is bought)
    change_plan: str | None  # the plan the user moves to
    note: str  # what the user reads


def judge(*, kind: str, name: str, pack_credits: int, amount: int, value: int, decimals: int, mined_at_ms: int,
          expires_at_ms: int) -> Outcome:
    """What a confirmed transfer of `value` does to an invoice of `amount`."""
    got = display(value, decimals)
    if mined_at_ms > expires_at_ms:
        return Outcome(Status.LATE, credits_worth(value, decimals), None,
                       f"paid {got} USDT after the invoice expired: granted as credits instead")
    if value < amount:
        return Outcome(Status.UNDERPAID, credits_worth(value, decimals), None,
                       f"paid {got} USDT of {display(amount, decimals)}: granted as credits instead")
    excess = credits_worth(value - amount, decimals)
    extra = f"; the excess is granted as {excess} credits" if excess else ""
    if kind == "plan":
        return Outcome(Status.PAID, excess, name, f"paid: the {name} plan is yours{extra}")
    return Outcome(Status.PAID, pack_credits + excess, None, f"paid: {pack_credits} credits granted{extra}")


@dataclass(frozen=True)
class LogEntry:
    """A log as plain values: the emitting contract, its topics and data as lower-case hex."""

    address: str
    topics: tuple[str, ...]
    data: str
    tx_hash: str = ""
    block_number: int = 0


class Refused(ValueError):
    """The transaction pays no invoice here; the message says why (for the user, naming what is wrong)."""


def topic_address(topic: str) -> str:
    return "0x" + topic[-40:].lower()


def address_topic(address: str) -> str:
    return "0x" + "0" * 24 + address[2:].lower()


def is_transfer(log: LogEntry) -> bool:
    return len(log.topics) == 3 and log.topics[0].lower() == TRANSFER_TOPIC


def transfer_value(log: LogEntry) -> int:
    return int(log.data, 16) if log.data not in ("", "0x") else 0


def paid_value(succeeded: bool, logs: list[LogEntry], token: str, receiving: str) -> int:
    """What a mined transaction paid `receiving` in `token`: the sum of the token's Transfer logs to it. Refused
    when the transaction failed, or moved another token (a look-alike), or paid another address."""
    if not succeeded:
        raise Refused("the transaction failed (reverted): nothing was paid")
    token, receiving = token.lower(), receiving.lower()
    transfers = [log for log in logs if is_transfer(log)]
    ours = [log for log in transfers if log.address.lower() == token and topic_address(log.topics[2]) == receiving]
    if ours:
        return sum(transfer_value(log) for log in ours)
    if any(topic_address(log.topics[2]) == receiving for log in transfers):
        raise Refused(f"the transfer is of another token, not USDT at {token}")
    if any(log.address.lower() == token for log in transfers):
        raise Refused(f"the USDT went to another address, not {receiving}")
    raise Refused("the transaction moves no USDT")
