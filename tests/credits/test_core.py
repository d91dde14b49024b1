"""The ledger's pure rules: signs of entries and the renewal day across month boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketpulse.accounts.plans import CHANNEL_CREDIT_COSTS, channel_credit_cost
from marketpulse.credits.core import ChargeResult, InsufficientCredits, Kind, current_period, grant_key, signed_amount


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_usage_subtracts_grants_add_and_adjustments_carry_their_sign() -> None:
    assert signed_amount(Kind.USAGE, 5) == -5
    assert [signed_amount(k, 5) for k in (Kind.GRANT, Kind.PURCHASE, Kind.REFUND)] == [5, 5, 5]
    assert signed_amount(Kind.ADJUSTMENT, -7) == -7
    for kind, amount in ((Kind.USAGE, 0), (Kind.GRANT, -1), (Kind.ADJUSTMENT, 0)):
        with pytest.raises(ValueError):
            signed_amount(kind, amount)


def test_an_insufficient_result_raises_for_a_402() -> None:
    with pytest.raises(InsufficientCredits) as refused:
        ChargeResult(False, balance=2, cost=5).require()
    assert (refused.value.balance, refused.value.cost) == (2, 5)
    assert ChargeResult(True, balance=0, cost=5).require().ok


def test_the_renewal_day_is_the_sign_up_day_clamped_to_short_months() -> None:
    signup = ms("2026-01-31T10:00:00")
    assert current_period(signup, signup - 1) is None
    assert current_period(signup, signup) == "2026-01"
    assert current_period(signup, ms("2026-02-28T09:59:59")) == "2026-01"
    assert current_period(signup, ms("2026-02-28T10:00:00")) == "2026-02"  # February has no 31st
    assert current_period(signup, ms("2026-03-30T23:00:00")) == "2026-02"
    assert current_period(signup, ms("2026-03-31T10:00:00")) == "2026-03"
    assert current_period(ms("2025-12-15T00:00:00"), ms("2026-01-14T23:59:59")) == "2025-12"  # across the year
    assert current_period(ms("2025-12-15T00:00:00"), ms("2026-01-15T00:00:00")) == "2026-01"
    assert grant_key("u1", "2026-02") == "grant:u1:2026-02"


def test_each_channel_has_one_credit_cost_in_the_plan_table() -> None:
    assert CHANNEL_CREDIT_COSTS == {"email": 1, "telegram": 1, "discord": 1, "slack": 1, "webhook": 1, "sms": 5,
                                    "push": 0, "in_app": 0}
    assert channel_credit_cost("sms") == 5
