"""Cadence and grouping on the injected clock: plan batches (one digest per batch per channel, one key, one charge),
quiet hours in the owner's time zone (held or dropped by priority), the flood limit, a crash mid-digest; and the
credits side: a dead notification refunded once, the out-of-credits notice told once per top-up."""

from __future__ import annotations

from sqlalchemy import select

from fakes.providers import Fail, FakeProviders
from marketpulse.accounts.preferences import Preferences
from marketpulse.clock import FakeClock
from marketpulse.credits.service import CreditLedger
from marketpulse.credits.tables import CreditEntryRow
from marketpulse.delivery import cadence
from marketpulse.delivery.cadence import DROP, HOLD, NOW, Decision, Policy, decide
from marketpulse.runtime import Runtime

from .helpers import add_destination, dispatcher, notifications, notify

T0 = 1_760_126_400_000  # the clock fixture's start: 2025-10-10 20:00:00 UTC (a Friday)
MIN = 60_000


# --- the pure rule --------------------------------------------------------------------------------------------------


def test_batched_plans_hold_until_the_next_wall_clock_boundary() -> None:
    assert decide(Policy(batch_minutes=5), "normal", T0, 0) == Decision(HOLD, T0 + 5 * MIN)
    assert decide(Policy(batch_minutes=5), "normal", T0 + 4 * MIN + 59_999, 0) == Decision(HOLD, T0 + 5 * MIN)
    assert decide(Policy(batch_minutes=15), "normal", T0 + 7 * MIN, 0) == Decision(HOLD, T0 + 15 * MIN)
    assert decide(Policy(), "normal", T0 + 7 * MIN, 0) == Decision(NOW)


def test_quiet_hours_in_the_owners_time_zone_wrapping_midnight() -> None:
    # 20:00 UTC is 22:00 in Berlin (CEST); quiet 21:30-07:15 local ends at 05:15 UTC the next day.
    berlin = Policy(time_zone="Europe/Berlin", quiet_hours_start="21:30", quiet_hours_end="07:15")
    ends = T0 + (9 * 60 + 15) * MIN
    assert decide(berlin, "normal", T0, 0) == Decision(HOLD, ends)
    assert decide(berlin, "low", T0, 0) == Decision(HOLD, ends)
    assert decide(Policy(**{**berlin.__dict__, "quiet_hours_low_priority": "drop"}), "low", T0, 0) == Decision(DROP)
    assert decide(berlin, "high", T0, 0) == Decision(NOW)  # high priority breaks through
    assert decide(berlin, "normal", ends, 0) == Decision(NOW)  # over at their end
    # the same hours in UTC: 20:00 is not quiet yet
    assert decide(Policy(quiet_hours_start="21:30", quiet_hours_end="07:15"), "normal", T0, 0) == Decision(NOW)
    # a 15-minute plan releases on its boundary at or after the end
    late = Policy(batch_minutes=15, time_zone="Asia/Kathmandu", quiet_hours_start="00:00", quiet_hours_end="02:00")
    # 20:00 UTC = 01:45 in Kathmandu (+05:45): quiet ends 02:00 local = 20:15 UTC, a 15-minute boundary
    assert decide(late, "normal", T0, 0) == Decision(HOLD, T0 + 15 * MIN)


def test_the_flood_limit_holds_the_rest_of_the_minute_for_its_end() -> None:
    flood = Policy(flood_limit_per_minute=3)
    assert decide(flood, "normal", T0 + 10_000, 2) == Decision(NOW)
    assert decide(flood, "normal", T0 + 10_000, 3) == Decision(HOLD, T0 + MIN)
    assert decide(Policy(flood_limit_per_minute=0), "normal", T0, 10_000) == Decision(NOW)


def test_a_digest_lists_its_alerts_in_order_and_one_alone_goes_as_it_is() -> None:
    one = {"title": "BTC up", "text": "crossed", "symbol": "BTCUSDT"}
    assert cadence.digest_message([one], T0) == one
    many = cadence.digest_message([{"title": f"a{i}", "text": "t", "symbol": "BTCUSDT"} for i in range(40)], T0)
    assert many["title"] == "40 alerts" and many["kind"] == "digest" and many["symbol"] == "BTCUSDT"
    lines = many["text"].split("\n")
    assert lines[:2] == ["• a0: t", "• a1: t"] and lines[-1] == "… and 10 more" and len(many["items"]) == 40


# --- through the dispatcher ------------------------------------------------------------------------------------------


async def _user(runtime: Runtime, plan: str, prefs: Preferences | None = None) -> str:
    user = await runtime.services.accounts.create_user(f"{plan}-{id(prefs)}@example.com", None, plan=plan,
                                                       verified=True)
    if prefs is not None:
        await runtime.services.accounts.preferences.put(user.id, prefs)
    return user.id


async def _grant(runtime: Runtime, ledger: CreditLedger, owner: str, amount: int, key: str) -> None:
    async with runtime.sessions.begin() as s:
        await ledger.grant(s, owner_id=owner, amount=amount, idempotency_key=key, reason="test")


async def _balance(runtime: Runtime, ledger: CreditLedger, owner: str) -> int:
    async with runtime.sessions() as s:
        return await ledger.balance(s, owner)


async def test_a_five_minute_plan_gets_one_digest_per_batch_per_channel_charged_once(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    ledger = CreditLedger(runtime.sessions, clock)
    alice = await _user(runtime, "pro")  # 5-minute batches
    await _grant(runtime, ledger, alice, 10, "g1")
    await add_destination(runtime, "hook", alice, address=fake.url("/hook/a"))
    await add_destination(runtime, "tg", alice, channel="telegram", address="42")
    d = dispatcher(runtime, credits=ledger)
    clock.advance(61_000)  # 20:01:01
    for i in range(3):
        await notify(runtime, alice, ["hook", "tg"], f"e{i}", symbol="BTCUSDT")
        assert await d.run_once() == 2  # planned and handed back: nothing sent
        clock.advance(30_000)
    assert fake.of("webhook") == [] and fake.of("telegram") == []
    assert {r.next_attempt_at_ms for r in await notifications(runtime)} == {T0 + 5 * MIN}
    clock.set(T0 + 5 * MIN - 1)
    assert await d.run_once() == 0  # not a millisecond early
    clock.set(T0 + 5 * MIN)
    await notify(runtime, alice, ["hook"], "late")  # after the boundary: the next batch
    assert await d.run_once() == 7  # the two digests, and "late" planned for the next batch
    assert await d.run_once() == 0
    [hook] = fake.of("webhook")
    body = hook.json()
    assert body["title"] == "3 alerts" and [i["title"] for i in body["items"]] == ["alert e0", "alert e1", "alert e2"]
    assert hook.headers["Idempotency-Key"] == cadence.digest_idempotency_key("hook", str(T0 + 5 * MIN))
    [tg] = fake.of("telegram")
    assert "3 alerts" in tg.json()["text"]
    rows = await notifications(runtime)
    assert [r.status for r in rows[:6]] == ["sent"] * 6
    assert sum(r.credits_charged for r in rows) == 2  # one credit per digest and channel, not per alert
    assert await _balance(runtime, ledger, alice) == 8
    assert (rows[6].status, rows[6].next_attempt_at_ms) == ("queued", T0 + 10 * MIN)
    clock.set(T0 + 10 * MIN)
    assert await d.run_once() == 1
    await d.close()
    assert [r.json()["title"] for r in fake.of("webhook")] == ["3 alerts", "alert late"]


async def test_a_crash_mid_digest_resends_it_whole_under_the_same_key(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    runtime.settings.delivery_batch_size, runtime.settings.delivery_lease_s = 2, 60
    alice = await _user(runtime, "free")  # 15-minute batches
    await add_destination(runtime, "hook", alice, address=fake.url("/hook/a"))
    for i in range(5):
        await notify(runtime, alice, ["hook"], f"e{i}")
    planner = dispatcher(runtime, name="planner")
    while await planner.run_once():  # batch size 2: planned over three claims
        pass
    clock.set(T0 + 15 * MIN)
    dead = dispatcher(runtime, name="dead")
    claimed = await dead.claim()  # the batch size is 2, yet the digest is claimed whole; then the process dies
    assert len(claimed) == 5
    heir = dispatcher(runtime, name="heir")
    assert await heir.run_once() == 0  # leased to the dead one
    clock.advance(60_000)
    assert await heir.run_once() == 5
    for d in (planner, dead, heir):
        await d.close()
    [got] = fake.of("webhook")
    assert got.json()["title"] == "5 alerts"
    assert got.headers["Idempotency-Key"] == cadence.digest_idempotency_key("hook", str(T0 + 15 * MIN))


async def test_quiet_hours_hold_normal_drop_low_and_pass_high(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    prefs = Preferences(time_zone="Europe/Berlin", quiet_hours_start="21:30", quiet_hours_end="07:15",
                        channels=("email",), quiet_hours_low_priority="drop")
    alice = await _user(runtime, "elite", prefs)  # instant
    await add_destination(runtime, "hook", alice, address=fake.url("/hook/a"))
    await notify(runtime, alice, ["hook"], "normal1")
    await notify(runtime, alice, ["hook"], "low", priority="low")
    await notify(runtime, alice, ["hook"], "high", priority="high")
    await notify(runtime, alice, ["hook"], "normal2")
    d = dispatcher(runtime)
    await d.run_once()
    assert [r.json()["title"] for r in fake.of("webhook")] == ["alert high"]
    rows = {r.event_key: r for r in await notifications(runtime)}
    assert (rows["low"].status, rows["low"].last_error) == ("skipped", "quiet_hours")
    assert rows["normal1"].status == rows["normal2"].status == "queued"
    morning = T0 + (9 * 60 + 15) * MIN  # 07:15 Berlin
    clock.set(morning - 1)
    assert await d.run_once() == 0
    clock.set(morning)
    assert await d.run_once() == 2
    await d.close()
    body = fake.of("webhook")[1].json()
    assert (body["title"], [i["title"] for i in body["items"]]) == ("2 alerts", ["alert normal1", "alert normal2"])


async def test_a_burst_past_the_flood_limit_becomes_one_digest_at_the_minutes_end(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    prefs = Preferences(flood_limit_per_minute=3)
    alice = await _user(runtime, "elite", prefs)
    await add_destination(runtime, "hook", alice, address=fake.url("/hook/a"))
    clock.advance(20_000)
    for i in range(10):
        await notify(runtime, alice, ["hook"], f"e{i}")
    d = dispatcher(runtime)
    await d.run_once()
    assert [r.json()["title"] for r in fake.of("webhook")] == ["alert e0", "alert e1", "alert e2"]
    clock.set(T0 + MIN)
    await notify(runtime, alice, ["hook"], "next-minute")  # a new minute: counted afresh, behind the digest
    assert await d.run_once() == 8
    await d.close()
    titles = [r.json()["title"] for r in fake.of("webhook")]
    assert titles[3:] == ["7 alerts", "alert next-minute"]
    assert {r.status for r in await notifications(runtime)} == {"sent"}


async def test_in_app_ones_arrive_at_once_on_a_batched_plan_and_in_quiet_hours(
        runtime: Runtime, fake: FakeProviders) -> None:
    prefs = Preferences(quiet_hours_start="19:00", quiet_hours_end="07:00")  # UTC: 20:00 is quiet
    alice = await _user(runtime, "free", prefs)  # 15-minute batches
    await add_destination(runtime, "app", alice, channel="in_app", address=alice)
    await add_destination(runtime, "hook", alice, address=fake.url("/hook/a"))
    await notify(runtime, alice, ["app", "hook"], "e1")
    d = dispatcher(runtime)
    assert await d.run_once() == 2
    await d.close()
    assert [(r.channel, r.status) for r in await notifications(runtime)] == [("in_app", "sent"), ("webhook", "queued")]


async def test_owners_without_an_account_are_delivered_at_once(
        runtime: Runtime, fake: FakeProviders) -> None:
    await add_destination(runtime, "hook", "ghost", address=fake.url("/hook/a"))
    for i in range(30):
        await notify(runtime, "ghost", ["hook"], f"e{i}")
    d = dispatcher(runtime)
    assert await d.run_once() == 30
    await d.close()
    assert len(fake.of("webhook")) == 30


async def test_a_dead_notification_is_refunded_once(runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    ledger = CreditLedger(runtime.sessions, clock)
    await _grant(runtime, ledger, "alice", 10, "g1")
    await add_destination(runtime, "sms", "alice", channel="sms", address="+15005550006")
    await add_destination(runtime, "hook", "alice", address=fake.url("/hook/a"))
    fake.script("webhook", [Fail(404)])  # permanent: dead at once
    await notify(runtime, "alice", ["sms", "hook"], "e1")
    d = dispatcher(runtime, credits=ledger)
    await d.run_once()
    rows = await notifications(runtime)
    assert [(r.channel, r.status, r.credits_charged) for r in rows] == [("sms", "sent", 5), ("webhook", "dead", 0)]
    assert await _balance(runtime, ledger, "alice") == 5
    async with runtime.sessions() as s:
        entries = [(e.kind, e.amount) for e in (await s.execute(
            select(CreditEntryRow).where(CreditEntryRow.owner_id == "alice").order_by(CreditEntryRow.id))).scalars()]
    assert entries == [("grant", 10), ("usage", -5), ("usage", -1), ("refund", 1)]
    # the same outcome written again (a takeover repeating the batch) refunds nothing more
    from marketpulse.delivery.dispatcher import Refund

    async with runtime.sessions.begin() as s:
        await d._refund(s, Refund("alice", rows[1].idempotency_key, 1, rows[1].id))
    await d.close()
    assert await _balance(runtime, ledger, "alice") == 5


async def test_out_of_credits_is_told_in_app_once_until_topped_up(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    ledger = CreditLedger(runtime.sessions, clock)
    await _grant(runtime, ledger, "alice", 1, "g1")
    await add_destination(runtime, "hook", "alice", address=fake.url("/hook/a"))
    d = dispatcher(runtime, credits=ledger)
    for i in range(4):
        await notify(runtime, "alice", ["hook"], f"e{i}")
        await d.run_once()
    await d.run_once()  # the notice itself
    rows = await notifications(runtime)
    hooks = [(r.status, r.last_error) for r in rows if r.channel == "webhook"]
    assert hooks == [("sent", None)] + [("skipped", "insufficient_credits")] * 3
    notices = [r for r in rows if r.channel == "in_app"]
    assert [(r.message["title"], r.status) for r in notices] == [("Out of credits", "sent")]
    await _grant(runtime, ledger, "alice", 1, "g2")  # topped up: the next shortage is told again
    for i in range(4, 7):
        await notify(runtime, "alice", ["hook"], f"e{i}")
        await d.run_once()
    await d.run_once()
    await d.close()
    assert len([r for r in await notifications(runtime) if r.channel == "in_app"]) == 2
