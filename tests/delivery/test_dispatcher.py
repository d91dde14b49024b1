"""Dispatching against the fake providers: what each channel sends, the retry delays on the injected clock, the
circuit breaker and the fallback provider, permanent refusals, and order per destination."""

from __future__ import annotations

import pytest

from fakes.providers import BAD_CHAT, TELEGRAM_TOKEN, UNSUBSCRIBED, Fail, FakeProviders, Hang
from marketpulse.clock import FakeClock
from marketpulse.delivery.breaker import CLOSED, OPEN
from marketpulse.delivery.outbox import idempotency_key
from marketpulse.delivery.signature import BadSignature, verify_signature
from marketpulse.runtime import Runtime

from .helpers import SECRET, add_destination, destination, dispatcher, notifications, notify


async def test_a_webhook_carries_its_idempotency_key_and_a_verifiable_signature(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    await add_destination(runtime, "d1", "alice", address=fake.url("/hook/a"))
    await notify(runtime, "alice", ["d1"], "BTCUSDT:1", symbol="BTCUSDT", fields={"price": 100250.5})
    d = dispatcher(runtime)
    assert await d.run_once() == 1
    await d.close()
    [got] = fake.of("webhook")
    assert got.headers["Idempotency-Key"] == idempotency_key("rule-1", "BTCUSDT:1", "d1")
    now_s = clock.now_ms() // 1000
    assert verify_signature(SECRET, got.headers["X-Pulse-Signature"], got.body, now_s) == now_s
    with pytest.raises(BadSignature):
        verify_signature(SECRET, got.headers["X-Pulse-Signature"], got.body + b" ", now_s)
    with pytest.raises(BadSignature, match="replay"):
        verify_signature(SECRET, got.headers["X-Pulse-Signature"], got.body, now_s + 301)
    body = got.json()
    assert (body["type"], body["symbol"], body["fields"]) == ("notification", "BTCUSDT", {"price": "100,250.50"})
    assert body["url"] == "https://pulse.example/?symbol=BTCUSDT"
    [row] = await notifications(runtime)
    assert (row.status, row.attempts, row.provider, row.sent_at_ms) == ("sent", 1, "webhook", clock.now_ms())


async def test_500s_timeouts_and_429s_are_retried_at_the_schedules_delays_then_dead(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    await add_destination(runtime, "d1", "alice", address=fake.url("/hook/a"))
    await notify(runtime, "alice", ["d1"], "e1")
    fake.script("webhook", [Fail(500), Hang(), Fail(429, retry_after=7), Fail(503), Fail(500), Fail(502)])
    d = dispatcher(runtime, breakers={})
    d.settings.delivery_breaker_failures = 100  # this test is about the delays alone
    expected_delays_s = [1, 2, 7, 8, 16]  # 1, 2, (Retry-After 7 instead of 4), 8, 16 — then the 6th send is the last
    for delay in expected_delays_s:
        start = clock.now_ms()
        assert await d.run_once() == 1
        [row] = await notifications(runtime)
        assert (row.status, row.next_attempt_at_ms - start) == ("failed", delay * 1000), row.last_error
        clock.set(row.next_attempt_at_ms - 1)
        assert await d.run_once() == 0  # not due a millisecond early
        clock.advance(1)
    assert await d.run_once() == 1
    [row] = await notifications(runtime)
    assert (row.status, row.attempts, row.last_error) == ("dead", 6, "webhook: HTTP 502: receiver error")
    assert len(fake.of("webhook")) == 6
    await d.close()


async def test_the_breaker_opens_the_fallback_delivers_and_a_half_open_probe_closes_it(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    await add_destination(runtime, "sms", "alice", channel="sms", address="+15005550006")
    await notify(runtime, "alice", ["sms"], "e1")
    fake.script("twilio", [Fail(500), Hang(), Fail(429)])  # Twilio's 429 names no wait: the backoff applies
    d = dispatcher(runtime)
    for delay in (1000, 2000, 4000):  # three failures in a row (threshold 3): retried on Twilio each time
        start = clock.now_ms()
        assert await d.run_once() == 1
        [row] = await notifications(runtime)
        assert (row.status, row.next_attempt_at_ms - start) == ("failed", delay)
        clock.set(row.next_attempt_at_ms)
    assert d.breaker("twilio").state == OPEN
    assert await d.run_once() == 1  # Twilio's circuit is open: Vonage delivers
    [row] = await notifications(runtime)
    assert (row.status, row.provider, row.attempts) == ("sent", "vonage", 4)
    assert [r.form()["text"] for r in fake.of("vonage")] == ["alert e1: crossed"]
    assert len(fake.of("twilio")) == 3
    clock.set(d.breaker("twilio").opened_at_ms + 30_000)  # the circuit half-opens: the next send probes Twilio
    await notify(runtime, "alice", ["sms"], "e2")
    assert await d.run_once() == 1
    rows = await notifications(runtime)
    assert (rows[1].status, rows[1].provider) == ("sent", "twilio")
    assert d.breaker("twilio").state == CLOSED
    await d.close()


async def test_permanent_refusals_are_not_retried_and_show_on_the_destination(
        runtime: Runtime, fake: FakeProviders) -> None:
    await add_destination(runtime, "tg", "alice", channel="telegram", address=BAD_CHAT)
    await add_destination(runtime, "sms", "alice", channel="sms", address=UNSUBSCRIBED)
    await notify(runtime, "alice", ["tg", "sms"], "e1")
    d = dispatcher(runtime)
    assert await d.run_once() == 2
    rows = await notifications(runtime)
    assert [(r.status, r.attempts) for r in rows] == [("dead", 1), ("dead", 1)]
    assert "chat not found" in (await destination(runtime, "tg")).last_error  # type: ignore[operator]
    assert "21610" in (await destination(runtime, "sms")).last_error  # type: ignore[operator]
    assert await d.run_once() == 0
    await d.close()


async def test_telegram_discord_and_slack_get_their_formats(runtime: Runtime, fake: FakeProviders) -> None:
    await add_destination(runtime, "tg", "alice", channel="telegram", address="4242")
    await add_destination(runtime, "dc", "alice", channel="discord", address=fake.url("/api/webhooks/1/tok"))
    await add_destination(runtime, "sl", "alice", channel="slack", address=fake.url("/services/T1/B1/x"))
    await notify(runtime, "alice", ["tg", "dc", "sl"], "e1", symbol="ETHUSDT", fields={"price": 3012.5})
    d = dispatcher(runtime)
    assert await d.run_once() == 3
    await d.close()
    [tg] = fake.of("telegram")
    assert tg.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert tg.json()["parse_mode"] == "HTML" and tg.json()["chat_id"] == "4242"
    assert "<b>alert e1</b>" in tg.json()["text"] and "<code>3,012.50</code>" in tg.json()["text"]
    [dc] = fake.of("discord")
    assert dc.path.endswith("?wait=true")
    assert dc.json()["embeds"][0]["fields"] == [{"name": "price", "value": "3,012.50", "inline": True}]
    [sl] = fake.of("slack")
    assert sl.json()["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "alert e1"}}
    assert {r.status for r in await notifications(runtime)} == {"sent"}


async def test_discord_and_telegram_rate_limits_set_the_next_attempt(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    await add_destination(runtime, "tg", "alice", channel="telegram", address="4242")
    await add_destination(runtime, "dc", "alice", channel="discord", address=fake.url("/api/webhooks/1/tok"))
    fake.script("telegram", [Fail(429, retry_after=11)])
    fake.script("discord", [Fail(429, retry_after=2.5)])
    await notify(runtime, "alice", ["tg", "dc"], "e1")
    d = dispatcher(runtime)
    await d.run_once()
    await d.close()
    rows = await notifications(runtime)
    assert [(r.channel, r.next_attempt_at_ms - clock.now_ms()) for r in rows] == [("telegram", 11_000),
                                                                                 ("discord", 2_500)]


async def test_a_failed_notification_holds_back_its_destinations_later_ones(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    await add_destination(runtime, "d1", "alice", address=fake.url("/hook/a"))
    for i in range(5):
        await notify(runtime, "alice", ["d1"], f"e{i}", text=str(i))
    fake.script("webhook", [Fail(200), Fail(500)])  # e0 delivered (200 is success), e1 fails
    d = dispatcher(runtime)
    await d.run_once()
    statuses = [r.status for r in await notifications(runtime)]
    assert statuses == ["sent", "failed", "queued", "queued", "queued"]
    assert await d.run_once() == 0  # e2… wait behind e1's retry
    clock.advance(1000)
    await d.run_once()
    await d.close()
    assert [r.status for r in await notifications(runtime)] == ["sent"] * 5
    assert [r.json()["text"] for r in fake.of("webhook")] == ["0", "1", "1", "2", "3", "4"]


async def test_a_killed_dispatchers_claim_is_taken_over_when_its_lease_expires(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    runtime.settings.delivery_batch_size, runtime.settings.delivery_lease_s = 3, 60
    await add_destination(runtime, "d1", "alice", address=fake.url("/hook/a"))
    await add_destination(runtime, "d2", "bob", address=fake.url("/hook/b"))
    for i in range(2):
        await notify(runtime, "alice", ["d1"], f"a{i}")
        await notify(runtime, "bob", ["d2"], f"b{i}")
    dead, heir = dispatcher(runtime, name="dead"), dispatcher(runtime, name="heir")
    claimed = await dead.claim()  # …and then it is killed before sending
    assert [c.row.event_key for c in claimed] == ["a0", "b0", "a1"]  # the batch size
    assert await heir.run_once() == 0  # b1 waits behind b0, which the dead dispatcher holds
    clock.advance(60_000 - 1)
    assert await heir.run_once() == 0
    assert fake.of("webhook") == []
    clock.advance(1)  # the lease expired: the heir takes everything over, in order
    assert await heir.run_once() == 3
    assert await heir.run_once() == 1
    await heir.close()
    await dead.close()
    assert {r.status for r in await notifications(runtime)} == {"sent"}
    titles = [r.json()["title"] for r in fake.of("webhook")]
    assert [t for t in titles if "a" in t.split()[-1]] == ["alert a0", "alert a1"]
    assert [t for t in titles if "b" in t.split()[-1]] == ["alert b0", "alert b1"]


async def test_each_delivery_is_charged_once_and_a_short_balance_skips_it(
        runtime: Runtime, fake: FakeProviders, clock: FakeClock) -> None:
    from marketpulse.credits.service import CreditLedger

    ledger = CreditLedger(runtime.sessions, clock)
    async with runtime.sessions.begin() as s:
        await ledger.grant(s, owner_id="alice", amount=6, idempotency_key="grant-1", reason="test")
    await add_destination(runtime, "sms", "alice", channel="sms", address="+15005550006")  # 5 credits each
    await add_destination(runtime, "hook", "alice", address=fake.url("/hook/a"))  # 1 credit each
    await add_destination(runtime, "app", "alice", channel="in_app", address="alice")  # free
    fake.script("twilio", [Fail(500)])  # the first SMS is retried: still charged once
    await notify(runtime, "alice", ["sms", "hook", "app"], "e1")
    await notify(runtime, "alice", ["sms", "hook", "app"], "e2")
    d = dispatcher(runtime, credits=ledger)
    await d.run_once()
    clock.advance(1000)
    await d.run_once()
    await d.close()
    rows = await notifications(runtime)
    assert [(r.event_key.split(":")[0], r.channel, r.status, r.credits_charged,
             r.last_error if r.status == "skipped" else None) for r in rows] == [
        ("e1", "sms", "sent", 5, None), ("e1", "webhook", "sent", 1, None), ("e1", "in_app", "sent", 0, None),
        ("e2", "sms", "skipped", 0, "insufficient_credits"), ("e2", "webhook", "skipped", 0, "insufficient_credits"),
        ("e2", "in_app", "sent", 0, None),
        ("insufficient_credits", "in_app", "sent", 0, None)]  # the owner is told once (tests/delivery/test_cadence)
    async with runtime.sessions() as s:
        assert await ledger.balance(s, "alice") == 0
