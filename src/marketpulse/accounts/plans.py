"""The one plan table: every per-plan limit and price lives here and nowhere else.

Figures come from the seeds where they give one (000: symbols, refresh, alerts listed, delivery cadence, channels;
003: prices, backtests per day, concurrent trades; 002 §7.3 and 003: API rate and quota) and are our choice where
they are silent (active alert rules, monthly credits, free paper positions, watchlists and their symbols,
volume-alert and signal subscriptions); `None` means unlimited. Seed 003 calls
the third plan "premium": `plan_named` accepts both names and answers the one canonical plan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ALL_CHANNELS = ("email", "telegram", "discord", "webhook", "sms")

# Credits one notification costs, per delivery channel (the same on every plan; plans differ in what they grant).
CHANNEL_CREDIT_COSTS: dict[str, int] = {
    "email": 1, "telegram": 1, "discord": 1, "slack": 1, "webhook": 1, "sms": 5, "push": 0, "in_app": 0,
}


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    price_per_month_usd: float | None  # None: priced per contract (enterprise)
    symbols_in_table: int | None  # top N by 24h quote volume
    table_refresh_s: int  # 0: real time
    volume_alerts_listed: int | None
    open_interest_column: bool
    alert_batch_minutes: int  # alerts delivered at minutes divisible by this (:00, :15, …); 0: at once
    alert_channels: tuple[str, ...]
    active_alert_rules: int | None
    backtests_per_day: int | None
    concurrent_paper_positions: int | None
    api_requests_per_minute: int
    api_requests_per_day: int | None
    monthly_credits: int
    watchlists: int | None  # watchlists a user may keep
    watchlist_symbols: int | None  # symbols in each watchlist
    volume_alert_subscriptions: int | None  # 0: the plan has none (subscriptions start at pro)
    signal_subscriptions: int | None  # strategy signal configs a user may subscribe to
    # API calls a month the price includes (None: unlimited). With `metered_api_calls` and a live card
    # subscription, calls past it go on (the daily window no longer refuses) and the excess is reported to Stripe
    # as meter events; without, the daily window stays a hard limit.
    api_calls_included_per_month: int | None = None
    metered_api_calls: bool = False
    aliases: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["alert_channels"] = list(self.alert_channels)
        out["aliases"] = list(self.aliases)
        return out


PLANS: tuple[Plan, ...] = (
    Plan(
        name="free", title="Free", price_per_month_usd=0.0,
        symbols_in_table=50, table_refresh_s=15 * 60, volume_alerts_listed=10, open_interest_column=False,
        alert_batch_minutes=15, alert_channels=("email",), active_alert_rules=5,
        backtests_per_day=3, concurrent_paper_positions=3,
        api_requests_per_minute=100, api_requests_per_day=1_000, monthly_credits=100,
        watchlists=3, watchlist_symbols=20, volume_alert_subscriptions=0, signal_subscriptions=1,
        api_calls_included_per_month=30_000,
    ),
    Plan(
        name="pro", title="Pro", price_per_month_usd=29.0,
        symbols_in_table=100, table_refresh_s=5 * 60, volume_alerts_listed=50, open_interest_column=True,
        alert_batch_minutes=5, alert_channels=("email", "telegram", "discord", "webhook"), active_alert_rules=50,
        backtests_per_day=None, concurrent_paper_positions=10,
        api_requests_per_minute=1_000, api_requests_per_day=10_000, monthly_credits=1_000,
        watchlists=10, watchlist_symbols=100, volume_alert_subscriptions=50, signal_subscriptions=10,
        api_calls_included_per_month=300_000, metered_api_calls=True,
    ),
    Plan(
        name="elite", title="Elite", price_per_month_usd=99.0,
        symbols_in_table=None, table_refresh_s=0, volume_alerts_listed=100, open_interest_column=True,
        alert_batch_minutes=0, alert_channels=("email", "telegram", "discord", "webhook", "sms"),
        active_alert_rules=200, backtests_per_day=None, concurrent_paper_positions=50,
        api_requests_per_minute=5_000, api_requests_per_day=100_000, monthly_credits=5_000,
        watchlists=50, watchlist_symbols=500, volume_alert_subscriptions=200, signal_subscriptions=50,
        api_calls_included_per_month=3_000_000, metered_api_calls=True, aliases=("premium",),
    ),
    Plan(
        name="enterprise", title="Enterprise", price_per_month_usd=None,
        symbols_in_table=None, table_refresh_s=0, volume_alerts_listed=None, open_interest_column=True,
        alert_batch_minutes=0, alert_channels=ALL_CHANNELS, active_alert_rules=None,
        backtests_per_day=None, concurrent_paper_positions=None,
        api_requests_per_minute=10_000, api_requests_per_day=None, monthly_credits=20_000,
        watchlists=None, watchlist_symbols=None, volume_alert_subscriptions=None, signal_subscriptions=None,
    ),
)


@dataclass(frozen=True)
class CreditPack:
    """Credits bought once (seed 004: 1 credit = $0.10, so $100 buys 1,000 credits)."""

    name: str
    credits: int
    price_usd: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


CREDIT_PACKS: tuple[CreditPack, ...] = (
    CreditPack(name="credits_100", credits=100, price_usd=10.0),
    CreditPack(name="credits_1000", credits=1_000, price_usd=100.0),
)

# The setting holding the Stripe Price id of each paid plan and credit pack (unset: not sold by card).
STRIPE_PRICE_SETTINGS: dict[str, str] = {
    "pro": "stripe_price_pro", "elite": "stripe_price_elite",
    "credits_100": "stripe_price_credits_100", "credits_1000": "stripe_price_credits_1000",
}


def stripe_prices(settings: object) -> dict[str, str | None]:
    """Each paid plan's and credit pack's Stripe Price id, as the settings give them."""
    return {name: getattr(settings, attr) for name, attr in STRIPE_PRICE_SETTINGS.items()}


_BY_NAME: dict[str, Plan] = {alias: p for p in PLANS for alias in (p.name, *p.aliases)}
PLAN_NAMES: tuple[str, ...] = tuple(p.name for p in PLANS) + tuple(a for p in PLANS for a in p.aliases)
DEFAULT_PLAN = "free"


class UnknownPlan(ValueError):
    pass


def plan_named(name: str) -> Plan:
    """The plan called `name` (case-insensitive; "premium" is elite)."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        raise UnknownPlan(f"unknown plan {name!r}: one of {', '.join(PLAN_NAMES)}") from None


def channel_credit_cost(channel: str) -> int:
    """Credits one delivery on `channel` costs (KeyError for a channel the table doesn't know)."""
    return CHANNEL_CREDIT_COSTS[channel]


def plans_json() -> list[dict[str, Any]]:
    return [p.to_json() for p in PLANS]
