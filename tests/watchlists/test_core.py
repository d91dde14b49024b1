"""The pure rules: what a watchable symbol is, and what each plan allows."""

from __future__ import annotations

import pytest

from marketpulse.accounts.plans import plan_named
from marketpulse.watchlists import core


@pytest.mark.parametrize(("raw", "expected"), [("BTCUSDT", "BTCUSDT"), ("btc-usdt", "BTCUSDT"),
                                                ("1000PEPE/USDT:USDT", "1000PEPEUSDT"), (" eth_usdt ", "ETHUSDT")])
def test_symbols_are_normalised(raw: str, expected: str) -> None:
    assert core.usdt_perp_symbol(raw) == expected


@pytest.mark.parametrize("raw", ["USDT", "BTCUSD", "BTC", "<b>USDT", "ÄUSDT", "", "*"])
def test_what_is_not_a_usdt_perpetual_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="USDT perpetual|market symbol"):
        core.usdt_perp_symbol(raw)


def test_a_subscription_takes_a_symbol_or_the_wildcard() -> None:
    assert core.subscription_symbol("*") == "*"
    assert core.subscription_symbol("sol-usdt") == "SOLUSDT"
    with pytest.raises(ValueError):
        core.subscription_symbol("**")


def test_names_lose_stray_whitespace_and_blank_is_refused() -> None:
    assert core.clean_name("  My   majors ") == "My majors"
    with pytest.raises(ValueError, match="blank"):
        core.clean_name("   ")


def test_watchlist_limits_follow_the_plan() -> None:
    free, enterprise = plan_named("free"), plan_named("enterprise")
    core.check_new_watchlist(free, 2)
    with pytest.raises(core.LimitReached, match="at most 3 watchlists") as refused:
        core.check_new_watchlist(free, 3)
    assert refused.value.field == "name"
    core.check_symbol_count(free, 20)
    with pytest.raises(core.LimitReached, match="at most 20 symbols"):
        core.check_symbol_count(free, 21, "symbol")
    core.check_new_watchlist(enterprise, 10_000)
    core.check_symbol_count(enterprise, 10_000)


def test_subscriptions_start_at_pro() -> None:
    assert core.lowest_plan_with_subscriptions().name == "pro"
    with pytest.raises(core.PlanRequired, match="need the pro plan or higher \\(your plan is free\\)"):
        core.check_new_subscription(plan_named("free"), 0)
    core.check_new_subscription(plan_named("pro"), 49)
    with pytest.raises(core.LimitReached, match="at most 50"):
        core.check_new_subscription(plan_named("pro"), 50)
    core.check_new_subscription(plan_named("enterprise"), 10_000)
