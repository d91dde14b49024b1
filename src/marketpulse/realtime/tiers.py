"""What each plan sees of the live market (pure: no I/O): its tier, its rows, and its wall-clock boundaries.

A *tier* is what a connection's plan makes of the live data: how many symbols (top N by 24h quote volume),
whether the open-interest column is shown, how often the table refreshes and when volume alerts are delivered.
Every figure comes from the plan table (`accounts/plans.py`); plans whose live figures are all equal share one tier,
named after the first of them in the table (enterprise sees what elite sees, so it is in `tier-elite`).

Boundaries are wall-clock multiples of a period since the epoch (UTC): alerts for a 15-minute tier go out at :00,
:15, :30 and :45; a period of 0 means "at once" (real time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marketpulse.accounts.plans import DEFAULT_PLAN, PLANS, Plan, plan_named

OPEN_INTEREST_FIELD = "openInterestUsd"  # the wire name of MarketRow.open_interest_usd (see market_feed.WIRE_FIELDS)
VOLUME_FIELD = "quoteVolume24h"
TIER_ROOM_PREFIX = "tier-"


@dataclass(frozen=True)
class Tier:
    name: str  # the first plan (in table order) with these figures
    symbols: int | None  # None: every symbol
    open_interest: bool
    table_refresh_ms: int  # 0: real time
    alert_batch_ms: int  # 0: each alert at once

    @property
    def room(self) -> str:
        return f"{TIER_ROOM_PREFIX}{self.name}"

    @property
    def realtime_table(self) -> bool:
        return self.table_refresh_ms == 0

    @property
    def instant_alerts(self) -> bool:
        return self.alert_batch_ms == 0

    def rows(self, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The rows this tier sees: the top N by 24h quote volume (largest first), open interest nulled without
        the column."""
        ranked = sorted(rows, key=lambda r: r[VOLUME_FIELD], reverse=True)
        if self.symbols is not None:
            ranked = ranked[: self.symbols]
        return [self.row(r) for r in ranked]

    def row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A wire row (or patch) as this tier sees it: the open interest is null without the column."""
        out = dict(row)
        if not self.open_interest and OPEN_INTEREST_FIELD in out:
            out[OPEN_INTEREST_FIELD] = None
        return out

    def describe(self, plan: Plan, now_ms: int) -> dict[str, Any]:
        """What a client shows about its live view: the plan, the tier and when the next batch and table come."""
        return {
            "plan": plan.name, "planTitle": plan.title, "tier": self.name, "room": self.room,
            "symbols": self.symbols, "openInterest": self.open_interest,
            "tableRefreshMs": self.table_refresh_ms, "alertBatchMs": self.alert_batch_ms,
            "serverTime": now_ms,
            "nextAlertBatchAt": None if self.instant_alerts else next_boundary(now_ms, self.alert_batch_ms),
            "nextTableAt": None if self.realtime_table else next_boundary(now_ms, self.table_refresh_ms),
        }


def _tier_of_plan(plan: Plan) -> tuple[int | None, bool, int, int]:
    return (plan.symbols_in_table, plan.open_interest_column, plan.table_refresh_s * 1000,
            plan.alert_batch_minutes * 60_000)


def _build_tiers() -> dict[str, Tier]:
    """Plan name → its tier; plans with equal live figures share the first one's."""
    by_figures: dict[tuple[int | None, bool, int, int], Tier] = {}
    out: dict[str, Tier] = {}
    for plan in PLANS:
        figures = _tier_of_plan(plan)
        out[plan.name] = by_figures.setdefault(figures, Tier(plan.name, *figures))
    return out


_TIER_OF_PLAN = _build_tiers()
TIERS: tuple[Tier, ...] = tuple(dict.fromkeys(_TIER_OF_PLAN.values()))  # distinct, in plan-table order


def tier_of(plan_name: str | None) -> Tier:
    """The tier of a plan (any of its names); None (anonymous) is the default plan's."""
    return _TIER_OF_PLAN[plan_of(plan_name).name]


def plan_of(plan_name: str | None) -> Plan:
    return plan_named(plan_name or DEFAULT_PLAN)


def next_boundary(now_ms: int, period_ms: int) -> int:
    """The first multiple of `period_ms` strictly after `now_ms` (12:14:59.999 → 12:15; 12:15:00.000 → 12:30)."""
    return now_ms - now_ms % period_ms + period_ms


def due_at(at_ms: int, period_ms: int) -> bool:
    """Whether `at_ms` is one of this period's boundaries."""
    return period_ms > 0 and at_ms % period_ms == 0
