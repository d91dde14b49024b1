"""The one plan table: served at /api/v1/plans, "premium" is elite, and the paper and backtest limits come from it."""

from __future__ import annotations

import httpx
import pytest

from marketpulse.accounts.plans import PLAN_NAMES, PLANS, UnknownPlan, plan_named
from marketpulse.trading.risk import PLAN_MAX_CONCURRENT_POSITIONS, Plan


async def test_the_api_serves_every_plan_with_every_limit(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/plans")
    assert resp.status_code == 200
    plans = {p["name"]: p for p in resp.json()["data"]}
    assert list(plans) == ["free", "pro", "elite", "enterprise"]
    free, pro, elite, enterprise = (plans[n] for n in ("free", "pro", "elite", "enterprise"))
    assert [p["symbols_in_table"] for p in plans.values()] == [50, 100, None, None]
    assert [p["table_refresh_s"] for p in plans.values()] == [900, 300, 0, 0]
    assert [p["volume_alerts_listed"] for p in plans.values()] == [10, 50, 100, None]
    assert [p["open_interest_column"] for p in plans.values()] == [False, True, True, True]
    assert [p["alert_batch_minutes"] for p in plans.values()] == [15, 5, 0, 0]
    assert free["alert_channels"] == ["email"] and "discord" in pro["alert_channels"]
    assert "sms" in elite["alert_channels"] and "sms" not in pro["alert_channels"]
    assert [p["backtests_per_day"] for p in plans.values()] == [3, None, None, None]
    assert [p["concurrent_paper_positions"] for p in plans.values()] == [3, 10, 50, None]
    assert (free["api_requests_per_minute"], free["api_requests_per_day"]) == (100, 1_000)
    assert enterprise["api_requests_per_minute"] == 10_000
    assert [p["price_per_month_usd"] for p in plans.values()] == [0.0, 29.0, 99.0, None]
    assert elite["aliases"] == ["premium"]
    for p in plans.values():
        assert {"active_alert_rules", "monthly_credits"} <= set(p)


def test_premium_is_elite_and_unknown_names_are_refused() -> None:
    assert plan_named("premium") is plan_named("Elite") is PLANS[2]
    assert PLAN_NAMES == ("free", "pro", "elite", "enterprise", "premium")
    with pytest.raises(UnknownPlan, match="one of free, pro, elite, enterprise, premium"):
        plan_named("gold")


def test_paper_position_limits_come_from_the_plan_table() -> None:
    assert PLAN_MAX_CONCURRENT_POSITIONS == {
        Plan.FREE: 3, Plan.PRO: 10, Plan.PREMIUM: 50, Plan.ENTERPRISE: None,
    }
    for plan in Plan:
        assert PLAN_MAX_CONCURRENT_POSITIONS[plan] == plan_named(plan.value).concurrent_paper_positions
