"""The pure rules of watchlists and volume-alert subscriptions: which symbols are acceptable, and what each plan
allows. No I/O: the service asks these before it writes, the views turn their refusals into 4xx answers.

Limits come from the one plan table (`accounts.plans`): `watchlists` per user, `watchlist_symbols` per list,
`volume_alert_subscriptions` per user (0: the plan has none). `None` there means unlimited.
"""

from __future__ import annotations

from collections.abc import Iterable

from marketpulse.accounts.plans import PLANS, Plan
from marketpulse.marketdata.models import exchange_symbol

QUOTE = "USDT"  # the dashboard lists USDT-margined perpetuals only
WILDCARD = "*"  # a subscription to every symbol
NAME_MAX_LENGTH = 64


class LimitReached(Exception):
    """The plan allows no more of something; `field` names the request field that asked for it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class PlanRequired(Exception):
    """The user's plan lacks the feature; `plan` is the lowest plan that has it."""

    def __init__(self, feature: str, plan: str, current: str) -> None:
        super().__init__(f"{feature} need the {plan} plan or higher (your plan is {current})")
        self.plan = plan


def usdt_perp_symbol(raw: str) -> str:
    """'btc-usdt' → 'BTCUSDT'. ValueError unless it reads as a USDT perpetual (letters and digits, then USDT)."""
    symbol = exchange_symbol(raw)
    if not symbol.endswith(QUOTE) or symbol == QUOTE:
        raise ValueError(f"{symbol!r} is not a USDT perpetual: symbols look like BTCUSDT or 1000PEPEUSDT")
    return symbol


def subscription_symbol(raw: str) -> str:
    """A USDT perpetual, or `*` for every symbol."""
    return WILDCARD if raw.strip() == WILDCARD else usdt_perp_symbol(raw)


def unique(symbols: Iterable[str]) -> list[str]:
    """Symbols in the order given, each once."""
    return list(dict.fromkeys(symbols))


def clean_name(raw: str) -> str:
    name = " ".join(raw.split())  # no leading, trailing or doubled whitespace: "Majors " and "Majors" are one name
    if not name:
        raise ValueError("must not be blank")
    return name


def check_new_watchlist(plan: Plan, existing: int) -> None:
    if plan.watchlists is not None and existing >= plan.watchlists:
        raise LimitReached("name", f"the {plan.name} plan keeps at most {plan.watchlists} watchlists: delete one "
                                   "or upgrade")


def check_symbol_count(plan: Plan, count: int, field: str = "symbols") -> None:
    """`count`: how many symbols the watchlist would hold."""
    if plan.watchlist_symbols is not None and count > plan.watchlist_symbols:
        raise LimitReached(field, f"the {plan.name} plan allows at most {plan.watchlist_symbols} symbols in a "
                                  f"watchlist ({count} asked)")


def lowest_plan_with_subscriptions() -> Plan:
    return next(p for p in PLANS if p.volume_alert_subscriptions != 0)


def check_subscriptions_allowed(plan: Plan) -> None:
    if plan.volume_alert_subscriptions == 0:
        raise PlanRequired("volume-alert subscriptions", lowest_plan_with_subscriptions().name, plan.name)


def check_new_subscription(plan: Plan, existing: int) -> None:
    check_subscriptions_allowed(plan)
    limit = plan.volume_alert_subscriptions
    if limit is not None and existing >= limit:
        raise LimitReached("symbol", f"the {plan.name} plan allows at most {limit} volume-alert subscriptions")
